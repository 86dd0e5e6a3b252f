#!/usr/bin/env bash
# Shows the main job of containerd-persist on a private containerd, with the
# shim's embedded default config:
#   1. an immutable container: read-only root, a writable 64 MiB /tmp that
#      starts with the image's /tmp and vanishes with the container;
#   2. a machine container whose state survives delete and re-create, even
#      from a newer image.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${DEMO_DIR:-/run/containerd-persist-demo}
BIN_DIR=${BIN_DIR:-/var/cache/containerd-persist/tools/containerd-v2.4.2}
NS=persist-demo
VOLUME=demo-machine
export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1

ctr() { "$BIN_DIR/ctr" -a "$DIR/containerd.sock" -n "$NS" "$@"; }
run() { ctr run --rm --runtime io.containerd.persist.v1 "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# show prints a command as one would type it, then runs it.
show() {
	local a words=()
	for a in "$@"; do
		[[ $a =~ [^A-Za-z0-9_./:=@-] ]] && a="'${a//\'/\'\\\'\'}'"
		words+=("$a")
	done
	[ "$1" = run ] && words[0]="ctr run --rm --runtime io.containerd.persist.v1"
	printf '$ %s\n' "${words[*]}"
	"$@"
}

cleanup() {
	"$REPO/bin/persistctl" -n "$NS" volumes rm "$VOLUME" >/dev/null 2>&1 || true
	"$REPO/scripts/containerd.sh" stop "$DIR"
}
trap cleanup EXIT

mkdir -p "$DIR"
SHIM_DIR="$REPO/bin" "$REPO/scripts/containerd.sh" start "$DIR"
for v in 1 2; do
	"$REPO/scripts/build-image.sh" "$DIR/image$v.tar" "docker.io/library/persist-demo:$v" "$v"
	ctr images import "$DIR/image$v.tar" >/dev/null
done
"$REPO/bin/persistctl" -n "$NS" volumes rm "$VOLUME" >/dev/null 2>&1 || true

say "An immutable container (the default class, web): the root is read-only"
show run docker.io/library/persist-demo:1 web1 sh -c 'touch /etc/motd || echo "-> / is read-only"'

say "... and /tmp is a 64 MiB overlay over the image's /tmp that takes writes"
show run docker.io/library/persist-demo:1 web2 sh -c 'ls /tmp; echo scratch > /tmp/note; cat /tmp/note; df -h /tmp | tail -1'

say "... that the next container does not see"
show run docker.io/library/persist-demo:1 web3 ls /tmp

say "A machine container (class vm, volume $VOLUME) writes state anywhere in its root"
show run --annotation persist.containerd.io/class=vm --annotation persist.containerd.io/name=$VOLUME \
	docker.io/library/persist-demo:1 vm1 sh -c 'echo "installed by vm1" > /etc/app.conf; cat /etc/image-version'

say "It is deleted (--rm); a new container from a NEWER image reattaches the volume"
show run --annotation persist.containerd.io/class=vm --annotation persist.containerd.io/name=$VOLUME \
	docker.io/library/persist-demo:2 vm2 sh -c 'cat /etc/app.conf; echo "image version: $(cat /etc/image-version)"'

say "The volume outlives its containers"
show "$REPO/bin/persistctl" -n "$NS" volumes ls

say "Nothing of the containers is left mounted"
echo "$(grep -c containerd-persist /proc/self/mountinfo || true) mounts under /var/lib/containerd-persist"
