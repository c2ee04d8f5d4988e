#!/usr/bin/env bash
# Build the msvmm guest kernel (Debian linux-source-6.1 + patches/ + msvmm.config).
#
# usage: guest-init/kernel/build.sh OUTDIR
#
# Result is cached under ${MSVMM_CACHE:-$HOME/.cache/msvmm}/kernel/<hash>/
# (vmlinux, bzImage, config, System.map), keyed by sha256 over the
# linux-source-6.1 package version, msvmm.config, every patch and this script.
# A cache hit only links/copies the files into OUTDIR, silently.
#
# On a miss: the source tarball is extracted once into
# kernel/work/<version>/src (patches are reverted/applied in place, so the
# tree always equals pristine + current patches) and built out of tree in
# kernel/work/<version>/obj, so rebuilds after a config or patch change are
# incremental.  The finished files are renamed into the cache atomically.
set -euo pipefail

die() { echo "kernel/build.sh: error: $*" >&2; exit 1; }
say() { echo "[kernel] $*"; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
OUTDIR=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FRAGMENT=$HERE/msvmm.config
CACHE=${MSVMM_CACHE:-$HOME/.cache/msvmm}/kernel
PKG=linux-source-6.1
TARBALL=/usr/src/linux-source-6.1.tar.xz
OUTFILES=(vmlinux bzImage config System.map)

shopt -s nullglob
PATCHES=("$HERE"/patches/*.patch)
shopt -u nullglob

# ---------------------------------------------------------------- packages
pkg_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}
ensure_packages() {
	local missing=() p
	for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing missing packages: ${missing[*]}"
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" ||
		{ $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; } ||
		die "apt-get install ${missing[*]} failed"
}

ensure_packages "$PKG"
[ -f "$TARBALL" ] || die "$TARBALL missing although $PKG is installed"
VERSION=$(dpkg-query -W -f='${Version}' "$PKG")

# ---------------------------------------------------------------- cache key
HASH=$(
	{
		echo "pkg $PKG $VERSION"
		for f in "$FRAGMENT" "${PATCHES[@]}" "$HERE/build.sh"; do
			echo "file ${f#"$HERE"/} $(sha256sum <"$f" | cut -d' ' -f1)"
		done
	} | sha256sum | cut -d' ' -f1
)
DEST=$CACHE/$HASH

install_out() {
	mkdir -p "$OUTDIR"
	local f
	for f in "${OUTFILES[@]}"; do
		rm -f "$OUTDIR/$f"
		ln "$DEST/$f" "$OUTDIR/$f" 2>/dev/null || cp "$DEST/$f" "$OUTDIR/$f"
	done
}
cache_hit() {
	local f
	for f in "${OUTFILES[@]}"; do [ -f "$DEST/$f" ] || return 1; done
}

if cache_hit; then
	install_out
	exit 0
fi

# ---------------------------------------------------------------- build
T0=$(date +%s)
ensure_packages flex bison bc libelf-dev libssl-dev make gcc patch xz-utils lz4
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	say "another kernel build is running; waiting for $CACHE/.lock"
	flock 9
fi
if cache_hit; then # built by whoever held the lock
	install_out
	exit 0
fi

say "building kernel $HASH ($PKG $VERSION)"
WORK=$CACHE/work/$VERSION
SRC=$WORK/src
OBJ=$WORK/obj
APPLIED=$WORK/applied # copies of the patches currently applied to $SRC, in order
LOG=$WORK/build.log
mkdir -p "$WORK"

# 1. pristine source tree (extracted once per package version)
if [ ! -f "$WORK/.extracted" ]; then
	say "extracting $TARBALL"
	rm -rf "$SRC" "$APPLIED" "$OBJ" "$WORK/tmp"
	mkdir -p "$WORK/tmp"
	tar -xf "$TARBALL" -C "$WORK/tmp"
	mv "$WORK/tmp/$PKG" "$SRC"
	rmdir "$WORK/tmp"
	mkdir -p "$APPLIED"
	touch "$WORK/.extracted"
fi

# 2. bring $SRC to pristine + current patches. Unchanged leading patches
#    stay applied; the rest are reverted (newest first) and re-applied, so
#    every touched file gets a fresh mtime and make rebuilds it.
mkdir -p "$APPLIED"
mapfile -t OLD < <(cd "$APPLIED" && ls -1 | sort)
keep=0
for ((i = 0; i < ${#OLD[@]} && i < ${#PATCHES[@]}; i++)); do
	if [ "${OLD[i]}" = "$(printf '%04d-%s' "$i" "$(basename "${PATCHES[i]}")")" ] &&
		cmp -s "$APPLIED/${OLD[i]}" "${PATCHES[i]}"; then
		keep=$((i + 1))
	else
		break
	fi
done
for ((i = ${#OLD[@]} - 1; i >= keep; i--)); do
	say "reverting ${OLD[i]#????-}"
	if ! patch -d "$SRC" -p1 -R -s -f --no-backup-if-mismatch <"$APPLIED/${OLD[i]}"; then
		rm -rf "$WORK/.extracted" "$SRC" "$APPLIED"
		die "could not revert ${OLD[i]}; source tree removed, run again to re-extract"
	fi
	rm -f "$APPLIED/${OLD[i]}"
done
for ((i = keep; i < ${#PATCHES[@]}; i++)); do
	p=${PATCHES[i]}
	say "applying $(basename "$p")"
	patch -d "$SRC" -p1 -s -f --no-backup-if-mismatch <"$p" ||
		{
			rm -rf "$WORK/.extracted" "$SRC" "$APPLIED"
			die "patch $(basename "$p") does not apply to $PKG $VERSION (source tree removed)"
		}
	cp "$p" "$APPLIED/$(printf '%04d-%s' "$i" "$(basename "$p")")"
done

# 3. configuration: tinyconfig + fragment + olddefconfig
KMAKE=(make -C "$SRC" O="$OBJ" ARCH=x86_64)
mkdir -p "$OBJ"
say "configuring (tinyconfig + msvmm.config)"
: >"$LOG"
{
	"${KMAKE[@]}" tinyconfig &&
		(cd "$OBJ" && "$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" "$OBJ/.config" "$FRAGMENT") &&
		"${KMAKE[@]}" olddefconfig
} >>"$LOG" 2>&1 || {
	tail -n 30 "$LOG" >&2
	die "configuration failed (log: $LOG)"
}

# 4. every CONFIG_X=value line of the fragment must hold in .config
#    (=n lines: option off or absent).
bad=0
while IFS= read -r line; do
	line=${line%%#*}
	line=${line//[[:space:]]/}
	[ -n "$line" ] || continue
	sym=${line%%=*}
	want=${line#*=}
	got=$(grep -E "^$sym=" "$OBJ/.config" | head -n1 | cut -d= -f2- || true)
	if [ "$want" = n ]; then
		if [ -n "$got" ]; then
			echo "  $sym: wanted n, got $got" >&2
			bad=1
		fi
	elif [ "$got" != "$want" ]; then
		echo "  $sym: wanted $want, got ${got:-<unset>}" >&2
		bad=1
	fi
done <"$FRAGMENT"
[ $bad -eq 0 ] || die "options from msvmm.config did not survive olddefconfig (see above; fix dependencies in msvmm.config)"

# 5. compile
JOBS=$(nproc)
say "compiling vmlinux bzImage (make -j$JOBS, log: $LOG)"
"${KMAKE[@]}" -j"$JOBS" vmlinux bzImage >>"$LOG" 2>&1 &
MAKEPID=$!
trap 'kill $MAKEPID 2>/dev/null || true' INT TERM EXIT
while kill -0 $MAKEPID 2>/dev/null; do
	for _ in $(seq 30); do
		sleep 1
		kill -0 $MAKEPID 2>/dev/null || break
	done
	kill -0 $MAKEPID 2>/dev/null || break
	last=$(grep -E '^  [A-Z]' "$LOG" | tail -n 1 | sed 's/^ *//' || true)
	say "  ... $(($(date +%s) - T0))s: ${last:-working}"
done
if ! wait $MAKEPID; then
	trap - INT TERM EXIT
	tail -n 40 "$LOG" >&2
	die "kernel build failed (log: $LOG)"
fi
trap - INT TERM EXIT

# 6. install into the cache atomically
TMPDEST=$CACHE/.tmp-$HASH-$$
rm -rf "$TMPDEST"
mkdir -p "$TMPDEST"
cp "$OBJ/vmlinux" "$TMPDEST/vmlinux"
cp "$OBJ/arch/x86/boot/bzImage" "$TMPDEST/bzImage"
cp "$OBJ/.config" "$TMPDEST/config"
cp "$OBJ/System.map" "$TMPDEST/System.map"
chmod a-w "$TMPDEST"/*
rm -rf "$DEST"
mv "$TMPDEST" "$DEST"
install_out

say "done in $(($(date +%s) - T0))s"
for f in vmlinux bzImage; do
	say "$(ls -l "$OUTDIR/$f" | awk '{print $5}') bytes  $OUTDIR/$f"
done
