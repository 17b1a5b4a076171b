#!/usr/bin/env bash
# Makes the base images the Dockerfile starts from (debian:bookworm-slim and golang:1.26-bookworm)
# locally, for machines that build with podman but cannot pull from an image registry:
# debootstrap a minimal Debian 12 root filesystem, import it, and add the host's Go toolchain for
# the builder image. The Dockerfile itself stays the one users build against the real images.
#
# Everything lives under $IMAGED_CONTAINER_CACHE (default $HOME/.cache/imaged/containers):
# podman's configuration, image storage and the root filesystem tarball, so a second run only
# checks that the images exist. Source it for the podman environment (container_env), or run it.
#
# Needs (as root): debootstrap, podman, runc. scripts/container-test.sh installs them.
set -euo pipefail
shopt -s inherit_errexit

CACHE="${IMAGED_CONTAINER_CACHE:-$HOME/.cache/imaged/containers}"
MIRROR="${IMAGED_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_IMAGE="docker.io/library/debian:bookworm-slim"
GO_IMAGE="docker.io/library/golang:1.26-bookworm"

# container_env points podman at configuration and storage under $CACHE rather than the system
# paths. runc: crun rejects machines with a mixed cgroup v1/v2 layout. The ulimits are the most
# such machines let a container have.
container_env() {
	mkdir -p "$CACHE/storage" "$CACHE/run" "$CACHE/tmp"
	cat >"$CACHE/containers.conf" <<-EOF
		[containers]
		default_ulimits = ["nofile=8192:8192", "nproc=4096:4096"]
		[engine]
		runtime = "runc"
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		image_copy_tmp_dir = "$CACHE/tmp"
	EOF
	cat >"$CACHE/storage.conf" <<-EOF
		[storage]
		driver = "overlay"
		graphroot = "$CACHE/storage"
		runroot = "$CACHE/run"
	EOF
	cat >"$CACHE/registries.conf" <<-EOF
		unqualified-search-registries = ["docker.io"]
		short-name-mode = "permissive"
	EOF
	export CONTAINERS_CONF="$CACHE/containers.conf"
	export CONTAINERS_STORAGE_CONF="$CACHE/storage.conf"
	export CONTAINERS_REGISTRIES_CONF="$CACHE/registries.conf"
	export TMPDIR="$CACHE/tmp"
}

have_image() { podman image exists "$1"; }

# rootfs_tar debootstraps Debian 12 (minbase) once, with the same apt sources as Debian's
# official image and the host's CA bundle (so TLS from RUN steps trusts what the host trusts).
rootfs_tar() {
	local tar="$CACHE/bookworm-minbase.tar"
	if [ -s "$tar" ]; then
		echo "$tar"
		return
	fi
	local dir="$CACHE/rootfs"
	rm -rf "$dir"
	echo "debootstrap bookworm (minbase) from $MIRROR" >&2
	debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >&2
	rm -f "$dir/etc/apt/sources.list"
	cat >"$dir/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $MIRROR
		Suites: bookworm bookworm-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: ${MIRROR%/debian}/debian-security
		Suites: bookworm-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	mkdir -p "$dir/etc/ssl"
	cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/host-ca.crt"
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log
	tar -C "$dir" --numeric-owner -cf "$tar.tmp" .
	mv "$tar.tmp" "$tar"
	rm -rf "$dir"
	echo "$tar"
}

base_images() {
	local tar stamp go_version
	go_version="$(go env GOVERSION)"
	stamp="$CACHE/golang-image.version"
	if have_image "$DEBIAN_IMAGE" && have_image "$GO_IMAGE" && [ "$(cat "$stamp" 2>/dev/null)" = "$go_version" ]; then
		echo "ok       $DEBIAN_IMAGE, $GO_IMAGE ($go_version)"
		return
	fi
	tar="$(rootfs_tar)"
	local env=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
		--change 'ENV SSL_CERT_FILE=/etc/ssl/host-ca.crt' --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt')
	if ! have_image "$DEBIAN_IMAGE"; then
		podman import "${env[@]}" --change 'CMD ["bash"]' "$tar" "$DEBIAN_IMAGE" >/dev/null
		echo "made     $DEBIAN_IMAGE"
	fi
	# The builder: the same root filesystem plus the host's Go toolchain where the official
	# golang image keeps it.
	local goroot work
	goroot="$(go env GOROOT)"
	work="$(mktemp -d "$CACHE/tmp/golang.XXXXXX")"
	cp "$tar" "$work/rootfs.tar"
	tar -C / --numeric-owner --transform "s,^${goroot#/},usr/local/go," -rf "$work/rootfs.tar" "${goroot#/}"
	podman import "${env[@]}" \
		--change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV GOPATH=/go' --change 'ENV GOTOOLCHAIN=local' --change 'WORKDIR /go' --change 'CMD ["bash"]' \
		"$work/rootfs.tar" "$GO_IMAGE" >/dev/null
	rm -rf "$work"
	echo "$go_version" >"$stamp"
	echo "made     $GO_IMAGE ($go_version)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	container_env
	base_images
fi
