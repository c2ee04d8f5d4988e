#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# build.sh OUTDIR [NAMES...]: build images into OUTDIR/<name>/ (default: all).
#
# busybox  initramfs.cpio  /init (msvmm guest-init), a static busybox with
#                          one symlink per applet, the usual empty dirs, /dev
#                          nodes; everything runs from the initramfs.
# python   initramfs.cpio  /init, /dev nodes and mount points only
#          rootfs.ext4     Debian bookworm minbase + python3-minimal, read-only
#                          lower layer of the guest's overlay root
#          scratch.ext4    empty, sparse 2 GiB writable layer: the VMM gives
#                          each sandbox its own copy of this template
# Each also gets an image.conf (name, files, default command; python's also
# its run-code runtime).
#
# Images are cached by content (this script, the init binary, and busybox or
# the package list; the python disks by this script and the package list
# only) under ${MSVMM_CACHE:-$HOME/.cache/msvmm}/images/<name>-<sha256>/;
# a cached image is only linked into OUTDIR, silently.  The python image needs
# root (debootstrap) and the Debian archive the host's apt uses, once.
#
# Environment: INIT_BIN (default build/guest/init), MKINITRAMFS (default
# build/bin/msvmm-mkinitramfs), both relative to the repository root;
# DEBOOTSTRAP_TIMEOUT (seconds, default 1200).
set -euo pipefail

die() {
	echo "images/build.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] || die "usage: build.sh OUTDIR [busybox|python]..."
outdir=$1
shift
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(busybox python)
for name in "${images[@]}"; do
	case $name in
	busybox | python) ;;
	*) die "unknown image '$name' (known: busybox python)" ;;
	esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
script=$(readlink -f "${BASH_SOURCE[0]}")

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

# ------------------------------------------------------------------ common

# The build dir of the entry being made; removed on any exit until stored.
tmp=

cleanup_tmp() {
	[ -n "$tmp" ] || return 0
	# debootstrap mounts proc and sys in its target (and leaves them there
	# when killed): never let rm walk into them.
	awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m" || true; done
	rm -rf --one-file-system "$tmp"
	tmp=
}
trap cleanup_tmp EXIT

# Start an entry: a private dir next to the cache entries (same filesystem,
# so the final rename is atomic).
entry_begin() {
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.$1-XXXXXX")
	# The mkinitramfs list format splits on blanks.
	case "$tmp" in
	*[[:space:]]*) die "no blanks allowed in paths: $tmp" ;;
	esac
}

# Rename the finished entry into place so a concurrent build never sees (or
# leaves) half an image.
entry_commit() {
	local entry=$1 marker=$2
	chmod 0755 "$tmp"
	if ! mv -T "$tmp" "$entry" 2>/dev/null; then
		# Someone else finished the same entry first: theirs is identical.
		[ -f "$entry/$marker" ] || die "cannot store $entry"
		cleanup_tmp
	fi
	tmp=
}

# Symbols only make the archive bigger for the guest to unpack.
strip_init() {
	strip -o "$1" "$init_bin" 2>/dev/null || cp "$init_bin" "$1"
}

# The /dev nodes init needs before devtmpfs is up, as mkinitramfs list lines.
dev_nodes() {
	echo "dir dev 0755"
	echo "nod dev/console 0600 c 5 1"
	echo "nod dev/mem 0600 c 1 1"
	echo "nod dev/null 0666 c 1 3"
}

# Hardlink (or sparse-copy) FILE from the entry into DEST and rename it into
# place, so DEST never holds a partial file.
install_file() {
	local entry=$1 dest=$2 f=$3
	[ ! "$entry/$f" -ef "$dest/$f" ] || return 0
	ln -f "$entry/$f" "$dest/.$f.tmp" 2>/dev/null ||
		cp --sparse=always "$entry/$f" "$dest/.$f.tmp"
	mv -f "$dest/.$f.tmp" "$dest/$f"
}

install_conf() {
	local dest=$1 conf=$2
	if [ "$(cat "$dest/image.conf" 2>/dev/null; echo x)" != "${conf}x" ]; then
		printf '%s' "$conf" >"$dest/.image.conf.tmp"
		mv -f "$dest/.image.conf.tmp" "$dest/image.conf"
	fi
}

now() { echo "$EPOCHREALTIME"; }
since() { LC_ALL=C awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
mib() { du -m --apparent-size "$1" | cut -f1; }

# ----------------------------------------------------------------- busybox

busybox=/bin/busybox

busybox_build() {
	local list a t0
	t0=$(now)
	echo "  IMAGE   busybox -> $1" >&2
	entry_begin busybox
	strip_init "$tmp/init"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tmp/passwd"
	printf 'root:x:0:\n' >"$tmp/group"

	list="$tmp/list"
	{
		dev_nodes
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
	echo "  IMAGE   busybox built in $(since "$t0") s:" \
		"initramfs.cpio $(du -k --apparent-size "$tmp/initramfs.cpio" | cut -f1) KiB" >&2
	entry_commit "$1" initramfs.cpio
}

busybox_image() {
	local hash entry dest
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
	if [ ! -f "$entry/initramfs.cpio" ]; then
		[ -x "$mkinitramfs" ] || die "$mkinitramfs: missing (make build/bin/msvmm-mkinitramfs)"
		busybox_build "$entry"
	fi
	dest="$outdir/busybox"
	mkdir -p "$dest"
	install_file "$entry" "$dest" initramfs.cpio
	install_conf "$dest" $'name=busybox\ninitramfs=initramfs.cpio\ndefault_cmd=/bin/sh\n'
}

# ------------------------------------------------------------------ python

py_suite=bookworm
py_variant=minbase
py_packages=python3-minimal
py_scratch_size=2G

# The URI this host's apt uses for suite $1 (one-line .list or deb822
# .sources files), or nothing: debootstrap then uses its own default.
apt_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v s="$1" '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
			if ($(i + 1) == s) { print $i; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v s="$1" 'BEGIN { RS = ""; FS = "\n" }
		{
			types = uris = suites = ""; enabled = "yes"
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^#/) continue
				k = tolower($i); sub(/:.*/, "", k)
				v = $i; sub(/^[^:]*:[ \t]*/, "", v)
				if (k == "types") types = v
				else if (k == "uris") uris = v
				else if (k == "suites") suites = v
				else if (k == "enabled") enabled = tolower(v)
			}
			if (enabled != "no" && (" " types " ") ~ / deb / &&
			    (" " suites " ") ~ (" " s " ")) {
				split(uris, u, " "); print u[1]; exit
			}
		}' "$f"
	done
}

# Show debootstrap's phases, not one line per package.
debootstrap_progress() {
	awk '/^[EW]:/ || (/^I: / && !/^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) [a-z0-9]/) ||
	     / the base system/ { print "    " $0; fflush() }' >&2
}

py_debootstrap() {
	local dir=$1 mirror log rc limit=${DEBOOTSTRAP_TIMEOUT:-1200}
	[ "$(id -u)" = 0 ] || die "python: debootstrap needs root (or a cached image)"
	if ! command -v debootstrap >/dev/null; then
		echo "    installing debootstrap" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
			die "python: cannot install debootstrap"
	fi
	mirror=$(apt_mirror "$py_suite" | head -n1) || true
	echo "    debootstrap $py_suite ($py_variant + $py_packages) from ${mirror:-its default mirror}" >&2
	log="$tmp/debootstrap.log"
	set +e
	timeout "$limit" debootstrap --variant="$py_variant" --include="$py_packages" \
		"$py_suite" "$dir" ${mirror:+"$mirror"} 2>&1 | tee "$log" | debootstrap_progress
	rc=${PIPESTATUS[0]}
	set -e
	[ "$rc" -ne 0 ] || return 0
	tail -n 15 "$log" >&2
	if [ "$rc" -eq 124 ]; then
		die "python: debootstrap timed out after ${limit}s (is the Debian archive ${mirror:-} reachable?)"
	elif grep -q -e 'Failed getting release file' -e "Couldn't download" \
		-e 'Failed to resolve' "$log"; then
		die "python: cannot reach the Debian archive ${mirror:-}"
	fi
	die "python: debootstrap failed (exit $rc)"
}

# Drop what a sandbox never reads: smaller image, faster to build and copy.
# The byte-compiled stdlib (__pycache__) stays: it is what makes start-up fast.
py_clean() (
	cd "$1"
	rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/debconf/*-old var/log/* \
		usr/share/doc/* usr/share/man/* usr/share/info/* usr/share/locale/* \
		usr/share/lintian tmp/* var/tmp/* dev/* debootstrap
	# debootstrap copies these from the build host.
	rm -f etc/resolv.conf etc/hostname
	echo msvmm >etc/hostname
	printf '127.0.0.1\tlocalhost msvmm\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >etc/hosts
)

# The read-only lower layer.  No journal (nothing to replay: mounting is just
# the superblock and group descriptors, and no jbd2 thread), no resize_inode
# (it is never grown), no reserved blocks, 4 KiB blocks and 256-byte inodes
# even though it is "small" (mke2fs would pick 1 KiB blocks), and inode tables
# written in full (it is built once; the guest never lazily inits them).
py_rootfs() {
	local dir=$1 img=$2 used files size
	used=$(du -sm "$dir" | cut -f1)
	files=$(find "$dir" -xdev | wc -l)
	size=$((used * 12 / 10 + 64))
	truncate -s "${size}M" "$img"
	mke2fs -q -F -t ext4 -d "$dir" -L msvmm-python -b 4096 -I 256 -m 0 \
		-N $((files * 12 / 10 + 1024)) -O ^has_journal,^resize_inode \
		-E lazy_itable_init=0,nodiscard "$img"
}

# The writable layer template: journalled (a sandbox can be killed mid-write),
# with lazy inode tables and journal so that it stays sparse (a few MiB
# allocated of 2 GiB); guest-init mounts it noinit_itable so the kernel never
# fills them in either.  upper/ and work/ are made here, not at every boot.
py_scratch() {
	local img=$1 skel="$tmp/scratch-skel"
	mkdir -p "$skel/upper" "$skel/work"
	chmod 0700 "$skel/work"
	truncate -s "$py_scratch_size" "$img"
	mke2fs -q -F -t ext4 -d "$skel" -L msvmm-scratch -b 4096 -I 256 -m 0 \
		-E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$img"
	rm -rf "$skel"
}

# Just init and the mount points of the root switch: the command runs from
# the root disk.
py_initramfs() {
	local cpio=$1
	strip_init "$tmp/init"
	{
		dev_nodes
		for d in proc sys; do echo "dir $d 0555"; done
		echo "dir tmp 1777"
		for d in run msvmm mnt mnt/lower mnt/rw newroot; do echo "dir $d 0755"; done
		echo "file init $tmp/init 0755"
	} >"$tmp/list"
	"$mkinitramfs" "$cpio" <"$tmp/list"
	rm -f "$tmp/list" "$tmp/init"
}

python_root_build() {
	local entry=$1 t0 boot
	t0=$(now)
	echo "  IMAGE   python disks -> $entry" >&2
	entry_begin python-root
	py_debootstrap "$tmp/root"
	boot=$(since "$t0")
	py_clean "$tmp/root"
	py_rootfs "$tmp/root" "$tmp/rootfs.ext4"
	cleanup_root "$tmp/root"
	py_scratch "$tmp/scratch.ext4"
	rm -f "$tmp/debootstrap.log"
	echo "  IMAGE   python disks built in $(since "$t0") s (debootstrap $boot s):" \
		"rootfs.ext4 $(mib "$tmp/rootfs.ext4") MiB ($(du -m "$tmp/rootfs.ext4" | cut -f1) MiB used)," \
		"scratch.ext4 $(mib "$tmp/scratch.ext4") MiB ($(du -m "$tmp/scratch.ext4" | cut -f1) MiB used)" >&2
	entry_commit "$entry" rootfs.ext4
}

python_init_build() {
	entry_begin python-init
	py_initramfs "$tmp/initramfs.cpio"
	echo "  IMAGE   python initramfs.cpio $(du -k --apparent-size "$tmp/initramfs.cpio" | cut -f1) KiB" >&2
	entry_commit "$1" initramfs.cpio
}

# The debootstrap tree is only an input of rootfs.ext4.
cleanup_root() {
	rm -rf --one-file-system "$1"
}

# The disks (debootstrap: a minute) depend on the recipe alone, the
# initramfs (init and mount points: milliseconds) on init too, so a new init
# does not rebuild the root filesystem.
python_image() {
	local root_hash init_hash root init dest
	root_hash=$(cat "$script" <(echo "$py_suite $py_variant $py_packages $py_scratch_size") |
		sha256sum | cut -c1-64)
	init_hash=$(cat "$init_bin" "$script" | sha256sum | cut -c1-64)
	root="$cache/python-root-$root_hash"
	init="$cache/python-init-$init_hash"
	[ -f "$root/rootfs.ext4" ] || python_root_build "$root"
	if [ ! -f "$init/initramfs.cpio" ]; then
		[ -x "$mkinitramfs" ] || die "$mkinitramfs: missing (make build/bin/msvmm-mkinitramfs)"
		python_init_build "$init"
	fi
	dest="$outdir/python"
	mkdir -p "$dest"
	install_file "$init" "$dest" initramfs.cpio
	install_file "$root" "$dest" rootfs.ext4
	install_file "$root" "$dest" scratch.ext4
	# runtime=: the interpreter run-code calls use (msx python --code ...).
	install_conf "$dest" $'name=python\ninitramfs=initramfs.cpio\nrootfs=rootfs.ext4\nscratch=scratch.ext4\ndefault_cmd=/usr/bin/python3\nruntime=python:/usr/bin/python3\n'
}

for name in "${images[@]}"; do
	"${name}_image"
done
