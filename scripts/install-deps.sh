#!/usr/bin/env bash
# Installs what the demo and the tests need, pinned, skipping what is already there.
# Debian packages come from apt-get; containerd and runc are built with `go install`
# into a versioned cache directory that later runs on the same machine reuse.
set -euo pipefail

CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
RUNC_VERSION=${RUNC_VERSION:-v1.4.3}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
TOOLS_DIR=${TOOLS_DIR:-/var/cache/containerd-persist/tools}

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: run as root (it installs Debian packages and mounts filesystems)" >&2
		exit 1
	fi
}

debian_packages() {
	local want=(btrfs-progs busybox-static e2fsprogs etcd-client etcd-server libseccomp-dev pkg-config util-linux tar xfsprogs xz-utils)
	local missing=()
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "install-deps: apt-get install ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# go_tool DIR PKG@VERSION [go build flags...]: go install into DIR unless the binary is there.
go_tool() {
	local dir=$1 pkg=$2; shift 2
	local bin
	bin=$(basename "${pkg%@*}")
	if [ -x "$dir/$bin" ]; then
		return
	fi
	echo "install-deps: go install $pkg"
	mkdir -p "$dir"
	GOBIN="$dir" GOFLAGS=-mod=mod go install "$@" "$pkg"
}

need_root
debian_packages
cd /
go_tool "$TOOLS_DIR/containerd-$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION"
go_tool "$TOOLS_DIR/containerd-$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
go_tool "$TOOLS_DIR/containerd-$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
go_tool "$TOOLS_DIR/runc-$RUNC_VERSION" "github.com/opencontainers/runc@$RUNC_VERSION" -tags seccomp
# crictl drives the CRI test (integration/cri_test.go).
go_tool "$TOOLS_DIR/crictl-$CRICTL_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
