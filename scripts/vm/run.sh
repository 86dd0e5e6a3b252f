#!/usr/bin/env bash
# Usage: run.sh (make vm-test)
# Runs the tests that need root inside a Debian 12 VM: systemd as PID 1,
# the unified cgroup v2 hierarchy, Debian's kernel, containerd and runc from
# scripts/install-deps.sh. The test binaries are built here, on the host,
# and shared with the VM over 9p with a copy of the source tree; the VM runs
# the integration suite once per cgroup driver of runc (systemd, cgroupfs).
# Prints go test's lines as they come, says which accelerator ran the VM
# (kvm when a probe boot works, else tcg), and exits non-zero when a test
# fails or the VM does not finish. The VM is stopped by its PID whatever
# happens; nothing is mounted or attached on the host.
#
# Environment:
#   VM_DRIVERS   cgroup drivers to test, in order (default "systemd cgroupfs")
#   VM_RUN       -run pattern for the integration tests (default: those that
#                start and delete containers in each mode, kill shims, restart
#                containerd, CRI and nerdctl; "." for all, about an hour per
#                cgroup driver under TCG here)
#   VM_CGROUPFS_SKIP  -skip pattern for the integration tests of the cgroupfs
#                pass (default ^TestCRI$: a kubelet on cgroup v2 with systemd
#                uses the systemd driver, and CRI takes 6 minutes under TCG)
#   VM_UNIT      0 skips the other packages whose tests need root (default 1)
#   VM_UNIT_SKIP -skip pattern for those (default the trees thousands of
#                levels deep, CPU-bound and minutes long under TCG; "" for none)
#   VM_ACCEL     kvm, tcg or auto (default auto: kvm if the probe boots)
#   VM_TIMEOUT   go test -timeout of each test binary (default 30m)
#   VM_DEADLINE  seconds the VM may run before it is stopped (default 3600)
#   VM_CPUS, VM_MEMORY  (default 2 and 4096 MiB)
#   VM_CACHE     image cache (default /var/cache/containerd-persist/vm)
#   TOOLS_DIR    containerd, runc, crictl (default /var/cache/containerd-persist/tools)
set -euo pipefail

VM_DRIVERS=${VM_DRIVERS:-systemd cgroupfs}
# Under TCG each container start takes 5-10 s here, 20-40 times the host's:
# the whole suite takes about an hour per driver. These are the tests whose
# outcome the init, the cgroup version and driver or the kernel can change.
vm_run_default='^(TestImmutableRootIsReadOnly|TestScratchShowsImageContentAndStartsFresh|TestScratchQuota|TestScratchWithoutImageContentIsTmpfs|TestDiskScratchSpares|TestRunsWithNoConfig|TestMachineStateSurvivesRecreate|TestMachineImageChange|TestVolumeHeldByAnotherContainer|TestLoopfileVolumeQuota|TestGroupedShimKeepsHolds|TestShimKilledLeavesNothing|TestFailedCreateLeavesNothing|TestPersistctlGCAfterKilledShim|TestContainerdRestart|TestReboot|TestOutOfSpace|TestCRI|TestNerdctl)$'
VM_RUN=${VM_RUN:-$vm_run_default}
VM_UNIT=${VM_UNIT:-1}
VM_CGROUPFS_SKIP=${VM_CGROUPFS_SKIP-^TestCRI\$}
VM_UNIT_SKIP=${VM_UNIT_SKIP-Deep|PastPathMax}
VM_ACCEL=${VM_ACCEL:-auto}
VM_TIMEOUT=${VM_TIMEOUT:-30m}
VM_DEADLINE=${VM_DEADLINE:-3600}
VM_CPUS=${VM_CPUS:-2}
VM_MEMORY=${VM_MEMORY:-4096}
VM_CACHE=${VM_CACHE:-/var/cache/containerd-persist/vm}
TOOLS_DIR=${TOOLS_DIR:-/var/cache/containerd-persist/tools}
GO=${GO:-go}
export VM_CACHE

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
module=github.com/containerd-persist/containerd-persist
t_start=$SECONDS

say() { echo "vm-test: $*"; }
die() {
	echo "vm-test: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (it builds a root filesystem and boots a VM)"

# Debian's qemu and mmdebstrap; the kernel comes from inside the image.
debian_packages() {
	local want=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs) missing=() p
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	say "apt-get install ${missing[*]}"
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}
debian_packages

t0=$SECONDS
image=$("$here/image.sh" | tail -1)
t_image=$((SECONDS - t0))
say "image $image ($(cat "$image/recipe" 2>/dev/null), ready in ${t_image} s)"

# Everything the VM sees of this run lives in stage; qemu is the only
# process that uses it. cleanup stops qemu by its PID.
stage=$(mktemp -d /var/tmp/persist-vm.XXXXXX)
qpid= tailpid=
cleanup() {
	local rc=$?
	trap '' PIPE # the terminal's reader may be gone already
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	if [ -n "$tailpid" ]; then
		kill "$tailpid" 2>/dev/null || true
		wait "$tailpid" 2>/dev/null || true
	fi
	# The last run's logs stay for a look after a failure.
	mkdir -p "$VM_CACHE/last-run"
	cp -f "$stage/out/test.log" "$stage/out/debug.log" "$stage/console.log" "$VM_CACHE/last-run/" 2>/dev/null || true
	rm -rf "$stage"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The packages whose tests need root, apart from the integration suite;
# bench runs go itself, which the VM has not.
unit_pkgs=()
[ "$VM_UNIT" = 0 ] || while read -r dir; do
	case $dir in integration | bench | bench/*) continue ;; esac
	unit_pkgs+=("$dir")
done < <(cd "$repo" && grep -rlE --include='*_test.go' 'testenv\.NeedRoot|Geteuid\(\) != 0' . |
	xargs -n1 dirname | sed 's|^\./||' | sort -u)

t0=$SECONDS
say "build on the host: the shim, its failpoint build, persistctl, test binaries of integration ${unit_pkgs[*]}"
# disk/ becomes the VM's second disk (guest.sh mounts it at
# /var/lib/persist-vm); out/ and the script stay on the 9p share.
disk=$stage/disk
mkdir -p "$disk/bin" "$disk/tests" "$disk/src" "$disk/tools" "$stage/out"
(
	cd "$repo"
	"$GO" build -trimpath -o "$disk/bin/" ./cmd/containerd-shim-persist-v1 ./cmd/containerd-shim-persist-fp-v1 ./cmd/persistctl
	"$GO" test -c -o "$disk/tests/" ./integration ${unit_pkgs[@]+$(printf './%s ' "${unit_pkgs[@]}")}
	# The tests read scripts/ and testdata from the tree, as under go test.
	git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$disk/src" -xf -
)
cp -a "$TOOLS_DIR/." "$disk/tools/"
# The nerdctl and cluster tests need nerdctl and an etcd server: the host's
# go in with the rest (the guest is Debian 12 too).
if [ -n "${NERDCTL:-}" ] && [ -x "$NERDCTL" ]; then
	cp "$NERDCTL" "$disk/bin/nerdctl"
	nerdctl_guest=/var/lib/persist-vm/bin/nerdctl
fi
etcd=${ETCD:-$(command -v etcd || true)}
if [ -n "$etcd" ] && [ -x "$etcd" ]; then
	cp "$etcd" "$disk/bin/etcd"
	etcd_guest=/var/lib/persist-vm/bin/etcd
fi
mkfs.ext4 -q -F -L persist-bin -d "$disk" "$stage/disk.img" "$(($(du -sm "$disk" | cut -f1) * 3 / 2 + 64))M" >/dev/null
rm -rf "$disk"
cp "$here/guest.sh" "$stage/guest.sh"
# Test binaries are named after the last element of the package path.
{
	printf 'CI=%q\n' "${CI:-}"
	printf 'NERDCTL=%q\n' "${nerdctl_guest:-}"
	printf 'ETCD=%q\n' "${etcd_guest:-}"
	printf 'VM_DRIVERS=%q\n' "$VM_DRIVERS"
	printf 'VM_UNIT_PKGS=%q\n' "${unit_pkgs[*]}"
	printf 'VM_RUN=%q\n' "$VM_RUN"
	printf 'VM_UNIT_SKIP=%q\n' "$VM_UNIT_SKIP"
	printf 'VM_CGROUPFS_SKIP=%q\n' "$VM_CGROUPFS_SKIP"
	printf 'VM_TIMEOUT=%q\n' "$VM_TIMEOUT"
} >"$stage/env"
: >"$stage/out/test.log"
say "built in $((SECONDS - t0)) s"

common=(-m "$VM_MEMORY" -nodefaults -vga none -display none -no-reboot -nic none
	-kernel "$image/vmlinuz" -initrd "$image/initrd.img")

# probe_kvm: true when Debian's kernel gets as far as running /init under
# KVM. A KVM that cannot run it fails at once (unknown MSRs) or hangs
# after the firmware; the answer is kept per host kernel and guest kernel.
probe_kvm() {
	local probe pid i ok=1 answer
	answer=$VM_CACHE/kvm-probe-$(uname -r)-$(basename "$image")
	if [ -f "$answer" ]; then
		return "$(cat "$answer")"
	fi
	[ -c /dev/kvm ] || return 1
	probe=$(mktemp)
	qemu-system-x86_64 -accel kvm -cpu host -smp 1 "${common[@]}" -serial "file:$probe" \
		-append "console=ttyS0 panic=-1 root=/dev/null" >/dev/null 2>&1 &
	pid=$!
	for ((i = 0; i < 300; i++)); do
		if grep -q 'Run /init as init process' "$probe" 2>/dev/null; then
			ok=0
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$probe"
	echo "$ok" >"$answer"
	return "$ok"
}

case $VM_ACCEL in
kvm) accel=(-accel kvm -cpu host) name=kvm ;;
tcg) accel=(-accel tcg,thread=multi -cpu max) name=tcg ;;
auto)
	if probe_kvm; then
		accel=(-accel kvm -cpu host) name=kvm
	else
		accel=(-accel tcg,thread=multi -cpu max) name=tcg
	fi
	;;
*) die "VM_ACCEL=$VM_ACCEL: want kvm, tcg or auto" ;;
esac
say "accelerator: $name ($VM_CPUS vCPUs, $VM_MEMORY MiB); cgroup drivers: $VM_DRIVERS${VM_RUN:+; -run $VM_RUN}"

t_boot=$SECONDS
# The image is never written: snapshot=on keeps the guest's writes in a
# temporary file that qemu removes.
qemu-system-x86_64 "${accel[@]}" -smp "$VM_CPUS" "${common[@]}" -serial "file:$stage/console.log" \
	-drive "file=$image/root.img,format=raw,if=virtio,cache=unsafe,snapshot=on" \
	-drive "file=$stage/disk.img,format=raw,if=virtio,readonly=on" \
	-virtfs "local,path=$stage,mount_tag=vm,security_model=none,id=vm" \
	-append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1 persist.vmtest=1" \
	</dev/null >"$stage/qemu.out" 2>&1 &
qpid=$!

# go test's lines as the guest writes them; the === lines of -v are left out.
tail -n +1 -F --pid="$qpid" "$stage/out/test.log" 2>/dev/null |
	grep --line-buffered -vE '^=== (RUN|PAUSE|CONT|NAME)' &
tailpid=$!

while kill -0 "$qpid" 2>/dev/null; do
	if ((SECONDS - t_boot > VM_DEADLINE)); then
		echo "vm-test: the VM still runs after ${VM_DEADLINE} s: stopping it (pid $qpid)" >&2
		kill -TERM "$qpid" 2>/dev/null || true
		break
	fi
	sleep 1
done
qrc=0
wait "$qpid" || qrc=$?
qpid=
wait "$tailpid" 2>/dev/null || true
tailpid=

t_vm=$((SECONDS - t_boot))
if [ ! -f "$stage/out/rc" ]; then
	echo "vm-test: the VM stopped before the tests finished (qemu exit $qrc); qemu said:" >&2
	tail -n 20 "$stage/qemu.out" >&2 || true
	echo "vm-test: console tail:" >&2
	tail -n 40 "$stage/console.log" >&2 || true
	die "FAIL (accelerator $name, ${t_vm} s in the VM; logs in $VM_CACHE/last-run)"
fi
rc=$(cat "$stage/out/rc")
summary="accelerator $name, VM ${t_vm} s (boot and tests), whole run $((SECONDS - t_start)) s"
if [ "$rc" != 0 ]; then
	die "FAIL: $summary; logs (test.log, debug.log: the guest's processes and journal) in $VM_CACHE/last-run"
fi
say "ok: $summary"
