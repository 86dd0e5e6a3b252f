#!/usr/bin/env bash
# Usage: image.sh
# Builds, once, the Debian 12 image that `make vm-test` boots: a root
# filesystem made with mmdebstrap (systemd as PID 1, cgroup v2), Debian's
# kernel and its initramfs from linux-image-amd64 inside it, and a oneshot
# unit that runs the tests the host shares with the VM. Prints the directory
# that holds root.img, vmlinuz and initrd.img.
#
# The image is cached under $VM_CACHE (default /var/cache/containerd-persist/vm)
# in a directory named by a hash of this recipe (this script, the guest unit
# and the apt sources), so a second run finds it at once.
set -euo pipefail

VM_CACHE=${VM_CACHE:-/var/cache/containerd-persist/vm}
SUITE=${VM_SUITE:-bookworm}
SOURCES=${VM_SOURCES:-/etc/apt/sources.list.d/debian.sources}
ROOT_SIZE=${VM_ROOT_SIZE:-16G} # sparse: tests reserve space for sized volumes
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# What the guest needs: systemd as init, udev for the virtio devices, the
# kernel and its initramfs, and the programs the tests run (mkfs.ext4,
# e2fsck, losetup, prlimit, busybox for the test image). /etc/hosts, which
# minbase lacks, is what CRI copies into each pod.
PACKAGES=systemd-sysv,udev,dbus,kmod,linux-image-amd64,initramfs-tools,e2fsprogs,util-linux,mount,procps,iproute2,busybox-static,ca-certificates

key=$(cat "${BASH_SOURCE[0]}" "$here/persist-vm-test.service" "$SOURCES" | sha256sum | cut -c1-16)
out=$VM_CACHE/debian-$SUITE-$key
if [ -f "$out/root.img" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
	echo "$out"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "vm image: run as root (mmdebstrap --mode=root, mkfs.ext4 -d)" >&2
	exit 1
fi
mkdir -p "$VM_CACHE"
work=$(mktemp -d "$VM_CACHE/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

t0=$SECONDS
echo "vm image: mmdebstrap $SUITE into $root (a few minutes, once)" >&2
# The guest's unit and the fstab go in while the packages are set up, so
# that systemctl enable sees the unit.
mmdebstrap --quiet --variant=minbase --mode=root --include="$PACKAGES" \
	--customize-hook='echo persist-vm >"$1/etc/hostname"' \
	--customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" >"$1/etc/fstab"' \
	--customize-hook='printf "127.0.0.1\tlocalhost\n127.0.1.1\tpersist-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n" >"$1/etc/hosts"' \
	--customize-hook="copy-in $here/persist-vm-test.service /etc/systemd/system" \
	--customize-hook='chroot "$1" systemctl enable persist-vm-test.service' \
	--customize-hook='chroot "$1" systemctl mask getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer' \
	--customize-hook='rm -f "$1"/etc/machine-id; : >"$1"/etc/machine-id' \
	"$SUITE" "$root" "$SOURCES" >&2

kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -1)
if [ -z "$kernel" ] || [ -z "$initrd" ]; then
	echo "vm image: no kernel or initramfs under $root/boot: is linux-image-amd64 installable from $SOURCES?" >&2
	exit 1
fi
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
# apt's cache is not needed in the guest.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

echo "vm image: mkfs.ext4 root.img ($ROOT_SIZE, sparse)" >&2
mkfs.ext4 -q -F -L persist-vm -d "$root" "$work/root.img" "$ROOT_SIZE" >&2
rm -rf "$root"
echo "$SUITE $(basename "$kernel") built in $((SECONDS - t0)) s" >"$work/recipe"
# Into place in one rename: a reader never sees half an image.
mkdir -p "$(dirname "$out")"
mv "$work" "$out"
trap - EXIT
# Images of older recipes are not booted again.
find "$VM_CACHE" -mindepth 1 -maxdepth 1 -type d -name 'debian-*' ! -path "$out" -exec rm -rf {} +
echo "vm image: built $out in $((SECONDS - t0)) s" >&2
echo "$out"
