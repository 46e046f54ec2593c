#!/usr/bin/env bash
# Builds the initramfs of the migration test guest: busybox-static, the
# counter workload (a static binary) and its init. Written with `busybox
# cpio` (no cpio binary is needed).
#
#   build-counter-initramfs.sh COUNTER_BINARY INIT_SCRIPT OUTPUT.cpio
set -euo pipefail

counter=${1:?usage: build-counter-initramfs.sh COUNTER_BINARY INIT_SCRIPT OUTPUT.cpio}
init=${2:?missing INIT_SCRIPT}
output=${3:?missing OUTPUT.cpio}
busybox=/bin/busybox

fail() {
  echo "build-counter-initramfs: $*" >&2
  exit 1
}
[[ -x $busybox ]] || fail "$busybox is missing (Debian package busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then fail "$busybox is dynamically linked; need busybox-static"; fi
if ldd "$counter" >/dev/null 2>&1; then fail "$counter is dynamically linked; the guest has no libc"; fi

root=$(mktemp -d "$(dirname "$output")/counter-root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$counter" "$root/bin/counter-guest"
install -m 0755 "$init" "$root/init"
(cd "$root" && find . | "$busybox" cpio -o -H newc) >"$output.tmp" 2>/dev/null
mv "$output.tmp" "$output"
