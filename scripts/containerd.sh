#!/usr/bin/env bash
# Usage: containerd.sh start|stop|env DIR
# Runs a private containerd whose root, state, temp dir, sockets, config, log
# and pid file all live under DIR, so it never collides with a host daemon.
#
# Environment:
#   BIN_DIR   containerd, ctr and containerd-shim-runc-v2
#             (default /var/cache/containerd-persist/tools/containerd-v2.4.2)
#   RUNC_DIR  runc (default /var/cache/containerd-persist/tools/runc-v1.4.3)
#   SHIM_DIR  optional; where containerd-shim-persist-v1 is, searched first
#   CRI       1 keeps the CRI plugins on (default off), with CNI config and
#             binaries looked up under DIR/cni instead of /etc and /opt
#   CONFIG_EXTRA  optional TOML file appended to the config, e.g. CRI
#             runtime handlers and pinned_images; it must not repeat a
#             table written here
set -euo pipefail

BIN_DIR=${BIN_DIR:-/var/cache/containerd-persist/tools/containerd-v2.4.2}
RUNC_DIR=${RUNC_DIR:-/var/cache/containerd-persist/tools/runc-v1.4.3}
SHIM_DIR=${SHIM_DIR:-}
CRI=${CRI:-0}
CONFIG_EXTRA=${CONFIG_EXTRA:-}
START_TIMEOUT=10
STOP_TIMEOUT=10

usage() {
	echo "usage: $0 start|stop|env DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
case "$DIR" in
/*) ;;
*)
	echo "containerd.sh: DIR must be an absolute path: $DIR" >&2
	exit 2
	;;
esac
DIR=${DIR%/}
SOCK=$DIR/containerd.sock
PIDFILE=$DIR/containerd.pid
CONFIG=$DIR/config.toml
LOG=$DIR/containerd.log

# pid_of_ours: prints the PID from the pid file if that process is a live
# containerd running our config (guards against PID reuse).
pid_of_ours() {
	local pid
	[ -f "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$CONFIG" || return 1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = containerd ] || return 1
	echo "$pid"
}

# alive PID: true while PID runs. A zombie counts as gone: PID 1 here may
# reap orphans seconds late.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# wait_gone PID SECONDS: true once PID has exited.
wait_gone() {
	local pid=$1 i
	for ((i = 0; i < $2 * 20; i++)); do
		alive "$pid" || return 0
		sleep 0.05
	done
	! alive "$pid"
}

# now_ms: wall clock in milliseconds.
now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# toml_str S: a TOML basic string.
toml_str() {
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}

write_config() {
	# Shim sockets default to the host-wide /run/containerd/s; keep them under
	# DIR when the path fits containerd's 42-character limit.
	local socket_dir=$DIR/s shim_section=
	if [ ${#socket_dir} -le 42 ]; then
		mkdir -p -m 0700 "$socket_dir"
		shim_section="
[plugins.\"io.containerd.shim.v1.manager\"]
  socket_dir = $(toml_str "$socket_dir")"
	fi
	# CRI, NRI, opt and image-verifier are off: they read or create
	# /etc, /opt, /var/run/nri and CNI paths on the host. With CRI on, its
	# CNI and netns paths are moved under DIR (host-network pods need no
	# CNI) and no CDI dirs are read. oom_score_adj is clamped to
	# containerd's own: a pod sandbox asks for -998, which fails without
	# CAP_SYS_RESOURCE.
	local cri_disabled='
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",' cri_section=
	if [ "$CRI" = 1 ]; then
		cri_disabled=
		mkdir -p -m 0700 "$DIR/cni/net.d" "$DIR/cni/bin"
		cri_section="

[plugins.\"io.containerd.cri.v1.runtime\"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []

[plugins.\"io.containerd.cri.v1.runtime\".cni]
  conf_dir = $(toml_str "$DIR/cni/net.d")
  bin_dirs = [$(toml_str "$DIR/cni/bin")]"
	fi
	# Version 4 is 2.4's native schema: older versions are migrated on every
	# start and the socket addresses must sit in the server plugin sections.
	cat >"$CONFIG.tmp" <<EOF
version = 4
root = $(toml_str "$DIR/root")
state = $(toml_str "$DIR/state")
temp = $(toml_str "$DIR/tmp")
imports = []
disabled_plugins = [$cri_disabled
  "io.containerd.nri.v1.nri",
  "io.containerd.internal.v1.opt",
  "io.containerd.image-verifier.v1.bindir",
]

[plugins."io.containerd.server.v1.grpc"]
  address = $(toml_str "$SOCK")

[plugins."io.containerd.server.v1.ttrpc"]
  address = $(toml_str "$SOCK.ttrpc")

[plugins."io.containerd.server.v1.debug"]
  address = $(toml_str "$DIR/debug.sock")
$shim_section$cri_section
EOF
	if [ -n "$CONFIG_EXTRA" ]; then
		cat "$CONFIG_EXTRA" >>"$CONFIG.tmp"
	fi
	mv -f "$CONFIG.tmp" "$CONFIG"
}

start() {
	local pid i t0
	if pid=$(pid_of_ours); then
		echo "containerd.sh: containerd already running in $DIR (pid $pid)"
		exit 0
	fi
	if [ ! -x "$BIN_DIR/containerd" ] || [ ! -x "$BIN_DIR/ctr" ]; then
		echo "containerd.sh: no containerd/ctr in $BIN_DIR (run scripts/install-deps.sh)" >&2
		exit 1
	fi
	# Unix socket paths are limited to 107 bytes.
	if [ ${#SOCK} -gt 101 ]; then
		echo "containerd.sh: DIR too long for a unix socket path: $DIR" >&2
		exit 1
	fi
	mkdir -p "$DIR"/{root,state,tmp}
	rm -f "$PIDFILE"
	write_config

	local path=$BIN_DIR:$RUNC_DIR:$PATH
	[ -z "$SHIM_DIR" ] || path=$SHIM_DIR:$path
	t0=$(now_ms)
	PATH=$path CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 \
		"$BIN_DIR/containerd" --config "$CONFIG" </dev/null >>"$LOG" 2>&1 &
	pid=$!
	echo "$pid" >"$PIDFILE"

	for ((i = 0; i < START_TIMEOUT * 20; i++)); do
		if ! alive "$pid"; then
			break
		fi
		if "$BIN_DIR/ctr" -a "$SOCK" version >/dev/null 2>&1; then
			echo "containerd.sh: containerd serving on $SOCK (pid $pid, $(($(now_ms) - t0)) ms)"
			return 0
		fi
		sleep 0.05
	done

	if alive "$pid"; then
		echo "containerd.sh: containerd did not serve within ${START_TIMEOUT}s; log tail:" >&2
	else
		echo "containerd.sh: containerd exited during start-up; log tail:" >&2
	fi
	tail -n 30 "$LOG" >&2 || true
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$PIDFILE"
	exit 1
}

stop() {
	local pid
	if ! pid=$(pid_of_ours); then
		rm -f "$PIDFILE"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
		echo "containerd.sh: containerd (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s, killing" >&2
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 5 || true
	fi
	rm -f "$PIDFILE"
}

case "$CMD" in
start) start ;;
stop) stop ;;
env) printf 'export CONTAINERD_ADDRESS=%q\n' "$SOCK" ;;
*) usage ;;
esac
