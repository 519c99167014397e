# shellcheck shell=bash disable=SC2034
# debian-lib.sh: shared by scripts/debian-guest and scripts/xen-boot-check (sourced, not run).
#
# Builds Debian 12 trees with debootstrap, cached under build/debian/ by a key made of
# this file's hash and the candidate versions of the packages asked for (the host's
# apt lists name the same archive as the chroot's). Root only (debootstrap, chroot, a
# proc mount inside the tree for the package scripts); never a loop device.
# Needs: debootstrap, apt-cache, sha256sum, tar, zstd.

DEBLIB_SELF=$(readlink -f "${BASH_SOURCE[0]}")
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
# the base tarball is shared by every script that sources this file
DEB_CACHE=$(cd "$(dirname "$DEBLIB_SELF")/.." && pwd)/build/debian
export PATH="$PATH:/usr/sbin:/sbin"

deb_die() {
	echo "${DEB_PROG:-debian-lib}: $*" >&2
	exit "${DEB_DIE_RC:-1}"
}

# deb_versions PKG...: "pkg=version" lines, the candidate of each package (one apt-cache call)
deb_versions() {
	local out p v
	out=$(apt-cache policy "$@" 2>/dev/null | awk '/^[^ ]/ { sub(/:$/, ""); p = $0 } /^ *Candidate:/ { print p "=" $2 }')
	for p in "$@"; do
		v=$(sed -n "s/^$p=//p" <<<"$out")
		if [ -z "$v" ] || [ "$v" = "(none)" ]; then deb_die "no candidate version for package $p (run apt-get update)"; fi
		echo "$p=$v"
	done
}

# deb_key TEXT...: a short hash of the arguments, the base recipe and the debootstrap version
deb_key() {
	{
		printf '%s\n' "$@"
		declare -f deb_base | sha256sum | cut -d' ' -f1
		dpkg-query -W -f='${Version}\n' debootstrap 2>/dev/null || true
	} | sha256sum | cut -c1-16
}

# deb_need_root: everything here writes root-owned trees
deb_need_root() {
	[ "$(id -u)" -eq 0 ] || deb_die "building Debian trees needs root (debootstrap, chroot)"
	command -v debootstrap >/dev/null || deb_die "debootstrap missing (apt-get install debootstrap)"
	command -v zstd >/dev/null || deb_die "zstd missing (apt-get install zstd)"
}

# deb_base CACHE_DIR DEST: a minbase bookworm tree with bookworm-security in its sources
# and apt lists fetched, extracted into DEST (made once, kept as CACHE_DIR/base-KEY.tar.zst)
deb_base() {
	local cache=$1 dest=$2 key tarball tmp
	deb_need_root
	key=$(deb_key base "$(deb_versions base-files apt libc6 | tr '\n' ' ')")
	tarball=$cache/base-$key.tar.zst
	mkdir -p "$cache"
	# one builder at a time (the guest and the dom0 share the base)
	exec 8>"$cache/.base.lock"
	flock 8
	if [ ! -s "$tarball" ]; then
		echo "${DEB_PROG:-debian-lib}: debootstrap --variant=minbase bookworm (once, cached as $tarball)" >&2
		tmp=$cache/base-$key.tmp
		rm -rf "$tmp"
		mkdir -p "$tmp"
		nice -n 10 debootstrap --variant=minbase bookworm "$tmp" "$DEBIAN_MIRROR" >"$cache/base-$key.log" 2>&1 ||
			deb_die "debootstrap failed; see $cache/base-$key.log"
		cat >"$tmp/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb $DEBIAN_SECURITY bookworm-security main
EOF
		# no service may start inside the chroot
		printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
		chmod 755 "$tmp/usr/sbin/policy-rc.d"
		chroot "$tmp" apt-get update -qq >>"$cache/base-$key.log" 2>&1 || deb_die "apt-get update in the chroot failed"
		chroot "$tmp" apt-get clean
		tar -C "$tmp" --numeric-owner --xattrs --acls -cf - . | zstd -q -T0 -3 -o "$tarball.part" ||
			deb_die "packing the base tree failed"
		mv "$tarball.part" "$tarball"
		rm -rf "$tmp"
	fi
	flock -u 8
	rm -rf "$dest"
	mkdir -p "$dest"
	zstd -q -dc "$tarball" | tar -C "$dest" --numeric-owner --xattrs --xattrs-include='*' --acls -xf - ||
		deb_die "unpacking $tarball failed"
}

# deb_install ROOT PKG...: apt-get install (no recommends) inside ROOT, with /proc, /sys and
# /dev/pts mounted only for the duration (they are unmounted before returning, also on error)
deb_install() {
	local root=$1 rc=0
	shift
	mount -t proc proc "$root/proc"
	mount -t sysfs sysfs "$root/sys"
	mount -t devpts devpts "$root/dev/pts" 2>/dev/null || true
	DEBIAN_FRONTEND=noninteractive nice -n 10 chroot "$root" apt-get install -y -q \
		--no-install-recommends -o Dpkg::Options::=--force-confdef "$@" || rc=$?
	umount "$root/dev/pts" 2>/dev/null || true
	umount "$root/sys" || umount -l "$root/sys"
	umount "$root/proc" || umount -l "$root/proc"
	[ $rc -eq 0 ] || deb_die "apt-get install $* failed in $root"
	chroot "$root" apt-get clean
}

# deb_tree_size_mib TREE: apparent size of TREE in MiB (for sizing filesystems)
deb_tree_size_mib() {
	du -s --block-size=1M "$1" | cut -f1
}
