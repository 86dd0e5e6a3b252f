#!/usr/bin/env bash
# Usage: build-image.sh OUT.tar NAME [IMAGE_VERSION [CMD]]
# Builds an OCI image layout tar with one uncompressed busybox layer, for
# `ctr images import`. No registry and no docker needed. The output is
# byte-for-byte reproducible, so two builds give the same digests.
# CMD is the image's command, words split on spaces (default /bin/sh); a CRI
# sandbox image needs one that runs until it is killed.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 4 ]; then
	echo "usage: $0 OUT.tar NAME [IMAGE_VERSION [CMD]]" >&2
	exit 2
fi
OUT=$1
NAME=$2
VERSION=${3:-1}
CMD=${4:-/bin/sh}
BUSYBOX=${BUSYBOX:-/bin/busybox}

# NAME is written into JSON unescaped, so only allow reference characters.
if ! [[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]]; then
	echo "build-image: bad image name: $NAME" >&2
	exit 2
fi
# CMD is written into JSON unescaped too.
if ! [[ $CMD =~ ^[A-Za-z0-9/._=:-]+( [A-Za-z0-9/._=:-]+)*$ ]]; then
	echo "build-image: bad command (words of [A-Za-z0-9/._=:-] separated by single spaces): $CMD" >&2
	exit 2
fi
read -ra cmd_words <<<"$CMD"
CMD_JSON=$(printf ',"%s"' "${cmd_words[@]}")
CMD_JSON="[${CMD_JSON#,}]"

# The OCI ref.name is the tag alone, as containerd's own exporter writes it.
last=${NAME##*/}
if [[ $last == *@* ]] || [[ $last != *:* ]]; then
	REF_NAME=$NAME
else
	REF_NAME=${last##*:}
fi

case "$(dpkg --print-architecture)" in
amd64) ARCH=amd64 VARIANT= ;;
arm64) ARCH=arm64 VARIANT= ;;
armhf) ARCH=arm VARIANT=v7 ;;
i386) ARCH=386 VARIANT= ;;
ppc64el) ARCH=ppc64le VARIANT= ;;
s390x) ARCH=s390x VARIANT= ;;
riscv64) ARCH=riscv64 VARIANT= ;;
*)
	echo "build-image: unsupported architecture $(dpkg --print-architecture)" >&2
	exit 1
	;;
esac
PLATFORM="\"architecture\":\"$ARCH\",\"os\":\"linux\""
[ -z "$VARIANT" ] || PLATFORM="$PLATFORM,\"variant\":\"$VARIANT\""

# Deterministic tar: fixed order, owners and mtimes.
dtar() {
	tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner "$@"
}

# cached: OUT is newer than this script and was built with the same arguments,
# so a caller that reuses one path for several images never gets a stale one.
cached() {
	[ -f "$OUT" ] && [ "$OUT" -nt "${BASH_SOURCE[0]}" ] || return 1
	local index layer
	index=$(tar -xOf "$OUT" index.json 2>/dev/null) || return 1
	[[ $index == *"\"io.containerd.image.name\":\"$NAME\""* ]] || return 1
	layer=$(tar -xOf "$OUT" "blobs/sha256/$(manifest_layer "$OUT" "$index")" 2>/dev/null |
		tar -xOf - ./etc/image-version 2>/dev/null; echo x) || return 1
	[ "$layer" = "$VERSION"$'\n'x ] || return 1
	[[ $(tar -xOf "$OUT" "blobs/sha256/$(manifest_config "$OUT" "$index")" 2>/dev/null) == *"\"Cmd\":$CMD_JSON,"* ]]
}

# manifest_config OUT INDEX_JSON: hex digest of the image config.
manifest_config() {
	local mdig manifest
	mdig=$(sed -n 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' <<<"$2")
	manifest=$(tar -xOf "$1" "blobs/sha256/$mdig")
	sed -n 's/.*"config":{[^}]*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' <<<"$manifest"
}

# manifest_layer OUT INDEX_JSON: hex digest of the single layer.
manifest_layer() {
	local mdig manifest
	mdig=$(sed -n 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' <<<"$2")
	manifest=$(tar -xOf "$1" "blobs/sha256/$mdig")
	sed -n 's/.*"layers":\[{[^}]*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' <<<"$manifest"
}

if cached; then
	exit 0
fi

if [ ! -x "$BUSYBOX" ]; then
	echo "build-image: $BUSYBOX missing (apt-get install busybox-static)" >&2
	exit 1
fi

work=$(mktemp -d)
tmp_out=
trap 'rm -rf "$work" ${tmp_out:+"$tmp_out"}' EXIT
umask 022

root=$work/rootfs
mkdir -p "$root"/{bin,etc,proc,sys,dev,run,tmp,var/tmp,root}
install -m 0755 "$BUSYBOX" "$root/bin/busybox"
"$BUSYBOX" --list >"$work/applets"
while read -r applet; do
	[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done <"$work/applets"
printf 'image /tmp file\n' >"$root/tmp/from-image"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '%s\n' "$VERSION" >"$root/etc/image-version"

layout=$work/layout
mkdir -p "$layout/blobs/sha256"

# add_blob FILE: moves FILE into the blob store, prints "DIGEST SIZE".
add_blob() {
	local hex size
	hex=$(sha256sum "$1" | cut -d' ' -f1)
	size=$(stat -c %s "$1")
	mv "$1" "$layout/blobs/sha256/$hex"
	echo "sha256:$hex $size"
}

dtar -C "$root" -cf "$work/layer.tar" .
read -r layer_digest layer_size < <(add_blob "$work/layer.tar")

printf '{%s,"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created_by":"scripts/build-image.sh"}]}' \
	"$PLATFORM" "$CMD_JSON" "$layer_digest" >"$work/config.json"
read -r config_digest config_size < <(add_blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
	"$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
read -r manifest_digest manifest_size < <(add_blob "$work/manifest.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"},"platform":{%s}}]}\n' \
	"$manifest_digest" "$manifest_size" "$NAME" "$REF_NAME" "$PLATFORM" >"$layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}\n' >"$layout/oci-layout"

mkdir -p "$(dirname "$OUT")"
# Write next to OUT and rename, so a reader never sees half an archive.
tmp_out=$(mktemp "$OUT.XXXXXX")
dtar -C "$layout" -cf "$tmp_out" oci-layout index.json blobs
chmod 0644 "$tmp_out"
mv -f "$tmp_out" "$OUT"
