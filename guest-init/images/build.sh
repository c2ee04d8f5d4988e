#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# build.sh OUTDIR: build the default "busybox" image into OUTDIR/busybox/:
#   initramfs.cpio  /init (msvmm guest-init), a static busybox with one
#                   symlink per applet, the usual empty dirs, /dev nodes
#   image.conf      name, initramfs file and default command
#
# The archive is cached by content (init, busybox and this script) under
# ${MSVMM_CACHE:-$HOME/.cache/msvmm}/images/busybox-<sha256>/.
#
# Environment: INIT_BIN (default build/guest/init), MKINITRAMFS (default
# build/bin/msvmm-mkinitramfs), both relative to the repository root.
set -euo pipefail

die() {
	echo "images/build.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: build.sh OUTDIR"
outdir=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
script="$root/guest-init/images/build.sh"
busybox=/bin/busybox

abspath() {
	case $1 in
	/*) echo "$1" ;;
	*) echo "$root/$1" ;;
	esac
}
init_bin=$(abspath "${INIT_BIN:-build/guest/init}")
mkinitramfs=$(abspath "${MKINITRAMFS:-build/bin/msvmm-mkinitramfs}")
cache="${MSVMM_CACHE:-$HOME/.cache/msvmm}/images"

[ -f "$init_bin" ] || die "$init_bin: missing (make build/guest/init)"

if [ ! -x "$busybox" ]; then
	echo "images: installing busybox-static" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null ||
		die "cannot install busybox-static (run as root, or install it)"
fi
# A dynamically linked busybox would find no libc in the guest.
if LC_ALL=C readelf -lW "$busybox" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$busybox is dynamically linked: install busybox-static"
fi

hash=$(cat "$init_bin" "$busybox" "$script" | sha256sum | cut -c1-64)
entry="$cache/busybox-$hash"

# Fill the cache entry: build in a private dir, then rename it into place so
# a concurrent build never sees (or leaves) half an image.
build_entry() {
	local tmp list a
	[ -x "$mkinitramfs" ] || die "$mkinitramfs: missing (make build/bin/msvmm-mkinitramfs)"
	echo "  IMAGE   busybox -> $entry" >&2
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.busybox-XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	# The list format splits on blanks.
	case "$tmp$busybox" in
	*[[:space:]]*) die "no blanks allowed in paths: $tmp" ;;
	esac

	# Symbols only make the archive bigger for the guest to unpack.
	if ! strip -o "$tmp/init" "$init_bin" 2>/dev/null; then
		cp "$init_bin" "$tmp/init"
	fi
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tmp/passwd"
	printf 'root:x:0:\n' >"$tmp/group"

	list="$tmp/list"
	{
		echo "dir dev 0755"
		echo "nod dev/console 0600 c 5 1"
		echo "nod dev/mem 0600 c 1 1"
		echo "nod dev/null 0666 c 1 3"
		for d in proc sys; do echo "dir $d 0555"; done
		echo "dir tmp 1777"
		echo "dir root 0700"
		for d in run etc msvmm bin sbin usr usr/bin usr/sbin; do echo "dir $d 0755"; done
		echo "file init $tmp/init 0755"
		echo "file bin/busybox $busybox 0755"
		echo "file etc/passwd $tmp/passwd 0644"
		echo "file etc/group $tmp/group 0644"
		"$busybox" --list-full | while read -r a; do
			[ "$a" = bin/busybox ] || echo "slink $a /bin/busybox"
		done
	} >"$list"
	"$mkinitramfs" "$tmp/initramfs.cpio" <"$list"
	rm -f "$tmp/list" "$tmp/init" "$tmp/passwd" "$tmp/group"

	chmod 0755 "$tmp"
	if ! mv -T "$tmp" "$entry" 2>/dev/null; then
		# Someone else finished the same entry first: theirs is identical.
		[ -f "$entry/initramfs.cpio" ] || die "cannot store $entry"
		rm -rf "$tmp"
	fi
	trap - EXIT
}

[ -f "$entry/initramfs.cpio" ] || build_entry

# Install: hardlink (or copy) and rename, so OUTDIR never holds a partial file.
dest="$outdir/busybox"
mkdir -p "$dest"
if [ ! "$entry/initramfs.cpio" -ef "$dest/initramfs.cpio" ]; then
	ln -f "$entry/initramfs.cpio" "$dest/.initramfs.cpio.tmp" 2>/dev/null ||
		cp "$entry/initramfs.cpio" "$dest/.initramfs.cpio.tmp"
	mv -f "$dest/.initramfs.cpio.tmp" "$dest/initramfs.cpio"
fi
conf=$'name=busybox\ninitramfs=initramfs.cpio\ndefault_cmd=/bin/sh\n'
if [ "$(cat "$dest/image.conf" 2>/dev/null; echo x)" != "${conf}x" ]; then
	printf '%s' "$conf" >"$dest/.image.conf.tmp"
	mv -f "$dest/.image.conf.tmp" "$dest/image.conf"
fi
