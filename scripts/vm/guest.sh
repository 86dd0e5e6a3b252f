#!/usr/bin/env bash
# Runs inside the VM, from the 9p share that scripts/vm/run.sh made (mounted
# at /mnt/vm by persist-vm-test.service): the test binaries the host built,
# one pass per cgroup driver. Writes go test's lines to out/test.log, which
# the host streams, and the exit code to out/rc. The unit powers the VM off
# when this ends.
set -u

share=/mnt/vm
out=$share/out
log=$out/test.log
# shellcheck source=/dev/null
. "$share/env" # CI, VM_DRIVERS, VM_UNIT_PKGS, VM_UNIT_SKIP, VM_CGROUPFS_SKIP, VM_RUN, VM_TIMEOUT, NERDCTL, ETCD
module=github.com/containerd-persist/containerd-persist
tools=/var/cache/containerd-persist/tools

say() { echo "$*" >>"$log"; }

# The binaries, the tools and the sources come on a second disk that the
# host made for this run (/dev/vdb, ext4): over 9p, with no page cache,
# every page an exec faults in is a round trip to the host, and a container
# start execs ctr, the shim and runc several times. The tools go where
# install-deps.sh puts them on a host.
t0=${EPOCHREALTIME/./}
work=/var/lib/persist-vm
mkdir -p "$tools" "$work"
if ! mount -o ro /dev/vdb "$work" || ! mount --bind "$work/tools" "$tools"; then
	say "vm: cannot mount the disk of binaries (/dev/vdb) at $work"
	echo 1 >"$out/rc"
	exit 1
fi
copied=$(((${EPOCHREALTIME/./} - t0) / 1000))

read -r up _ </proc/uptime
say "vm: up in ${up}s (binaries mounted in ${copied} ms): kernel $(uname -r), init $(cat /proc/1/comm), $(stat -fc %T /sys/fs/cgroup) at /sys/fs/cgroup ($(cat /sys/fs/cgroup/cgroup.controllers)), $(nproc) CPUs"

# debug WHAT: what the host cannot see once the VM is gone, after a failed
# test binary: processes, cgroups, mounts, loop devices, the journal.
debug() {
	{
		echo "=== after $1 failed"
		ps -eo pid,ppid,stat,etime,args
		systemctl list-units --no-pager --type=scope,slice
		find /sys/fs/cgroup -name cgroup.procs -size +0 2>/dev/null | head -50
		cat /proc/self/mountinfo
		losetup -a
		journalctl -b --no-pager -n 200
	} >>"$out/debug.log" 2>&1
}

# run_pkg DIR NAME ENV...: runs the test binary of package DIR with ENV and
# prints go test's ok/FAIL line for it.
rc=0
run_pkg() {
	local dir=$1 name=$2 t0 r ms secs
	shift 2
	local args=(-test.v -test.count=1 "-test.timeout=$VM_TIMEOUT")
	if [ "$dir" = integration ]; then
		[ -z "$VM_RUN" ] || args+=("-test.run=$VM_RUN")
		[ "$driver" != cgroupfs ] || [ -z "${VM_CGROUPFS_SKIP:-}" ] || args+=("-test.skip=$VM_CGROUPFS_SKIP")
	else
		[ -z "${VM_UNIT_SKIP:-}" ] || args+=("-test.skip=$VM_UNIT_SKIP")
	fi
	t0=${EPOCHREALTIME/./}
	(cd "$work/src/$dir" && env "$@" "$work/tests/$name.test" "${args[@]}") >>"$log" 2>&1 </dev/null
	r=$?
	ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
	secs=$((ms / 1000)).$(printf %03d $((ms % 1000)))
	if [ $r = 0 ]; then
		printf 'ok  \t%s\t%ss\n' "$module/$dir" "$secs" >>"$log"
	else
		printf 'FAIL\t%s\t%ss\n' "$module/$dir" "$secs" >>"$log"
		rc=1
		debug "$dir"
	fi
}

export CI
[ -z "${NERDCTL:-}" ] || export NERDCTL
[ -z "${ETCD:-}" ] || export ETCD
first=1
for driver in $VM_DRIVERS; do
	case $driver in
	systemd) want=1 what='runc with the systemd cgroup driver (SystemdCgroup = true)' ;;
	cgroupfs) want=0 what='runc with the cgroupfs driver' ;;
	*)
		say "vm: unknown cgroup driver $driver (want systemd or cgroupfs)"
		rc=1
		continue
		;;
	esac
	say "vm: pass: $what"
	if [ $first = 1 ]; then
		# The packages whose tests need root do not depend on the driver.
		for pkg in $VM_UNIT_PKGS; do
			run_pkg "$pkg" "${pkg##*/}"
		done
		first=0
	fi
	run_pkg integration integration PERSIST_TEST_BIN="$work/bin" PERSIST_SYSTEMD_CGROUP=$want
done

echo $rc >"$out/rc.tmp" && mv "$out/rc.tmp" "$out/rc"
# 9p writes through (no cache): a sync is all the host needs before the
# unit powers the VM off. The share stays mounted: bash reads this script
# from it.
sync
exit $rc
