#!/usr/bin/env bash
# Copies the shared libraries and the dynamic loader of each binary, as ldd
# reports them, into SYSROOT at the same paths. The guest's /lib, /lib64 and
# /usr/lib point into SYSROOT on the share, so the binaries run unchanged.
#
#   collect-libraries.sh SYSROOT BINARY...
set -euo pipefail

sysroot=${1:?usage: collect-libraries.sh SYSROOT BINARY...}
shift

fail() {
  echo "collect-libraries: $*" >&2
  exit 1
}

# The folders the guest links into the sysroot (build-initramfs.sh).
covered='^/(lib|lib64|usr/lib)/'

declare -A libraries=()
for binary in "$@"; do
  [[ -x $binary ]] || fail "not an executable: $binary"
  if ! listing=$(ldd "$binary" 2>&1); then
    [[ $listing == *"not a dynamic executable"* ]] && continue
    fail "ldd $binary failed: $listing"
  fi
  while read -r line; do
    case $line in
      *"=> not found"*) fail "$binary needs a library the host lacks: $line" ;;
      *"=> /"*) lib=${line#*=> } ;;
      /*) lib=$line ;;
      *) continue ;; # linux-vdso and other kernel-provided objects
    esac
    lib=${lib%% (*}
    [[ $lib =~ $covered ]] || fail "$lib is outside /lib, /lib64 and /usr/lib, which the guest links"
    libraries[$lib]=1
  done <<<"$listing"
done

mkdir -p "$sysroot"
if ((${#libraries[@]})); then
  cp -L --parents "${!libraries[@]}" "$sysroot"
fi
echo "collect-libraries: ${#libraries[@]} files in $sysroot" >&2
