#!/usr/bin/env bash
# Builds the test VM's initramfs: busybox-static, the guest init, the modules
# that mount the 9p share and the kernel's config. Shared libraries are not
# in it: /lib, /lib64 and /usr/lib are links into /share/sysroot, which
# collect-libraries.sh fills, so the guest reads only the pages it uses.
#
#   build-initramfs.sh KERNEL_DIR GUEST_INIT OUTPUT.cpio
#
# KERNEL_DIR is what fetch-kernel.sh printed. The archive is an uncompressed
# newc cpio written with `busybox cpio` (no cpio binary is needed).
set -euo pipefail

kernel_dir=${1:?usage: build-initramfs.sh KERNEL_DIR GUEST_INIT OUTPUT.cpio}
guest_init=${2:?missing GUEST_INIT}
output=${3:?missing OUTPUT.cpio}

busybox=/bin/busybox
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Insertion order matters: there is no modules.dep, so each module is loaded
# after the ones it needs.
share_modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
  9pnet 9pnet_virtio netfs fscache 9p)
# Kernel TLS with AES-GCM, for the in-VM kernel TLS tests (the build host's
# kernel has no CONFIG_TLS). Optional: a kernel without them boots the same,
# and those tests skip there with the reason. AES-GCM's modules are loaded
# up front. `tls` is loaded only when the kernel asks for it (module
# request "tcp-ulp-tls", answered by vm-modprobe.sh from request-map), as a
# stock host loads it on first use; the tests check that Atoll's request
# loads it.
ktls_modules=(gf128mul ghash-generic ctr gcm)
requested_modules=("tcp-ulp-tls tls")

fail() {
  echo "build-initramfs: $*" >&2
  exit 1
}

version=$(cat "$kernel_dir/unpacked.stamp")
modules_dir=$kernel_dir/lib/modules/$version
[[ -d $modules_dir ]] || fail "no modules folder $modules_dir"
[[ -x $busybox ]] || fail "$busybox is missing (Debian package busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
  fail "$busybox is dynamically linked; the guest needs busybox-static"
fi

root=$(mktemp -d "$(dirname "$output")/initramfs-root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,share,modules,boot}
# Where Debian hosts keep the kernel's build options; `atoll check` reads them.
cp "$kernel_dir/boot/config-$version" "$root/boot/"
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$guest_init" "$root/init"

# Modules: copy the ones that exist as files (into LIST's load order unless
# LIST is empty), skip the ones built into this kernel; anything else is
# refused, or with "optional" only noted.
add_module() { # NAME LIST [optional]
  local name=$1 list=$2 file
  file=$(find "$modules_dir/kernel" -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" |
    head -n 1)
  if [[ -n $file ]]; then
    case $file in
      *.ko.xz) xz -dc "$file" >"$root/modules/$name.ko" ;;
      *.ko.zst) zstd -qdc "$file" >"$root/modules/$name.ko" ;;
      *) cp "$file" "$root/modules/$name.ko" ;;
    esac
    if [[ -n $list ]]; then echo "$name" >>"$root/modules/$list"; fi
  elif grep -q "/$name\.ko$" "$modules_dir/modules.builtin"; then
    echo "build-initramfs: $name is built into $version" >&2
  elif [[ ${3:-} == optional ]]; then
    echo "build-initramfs: optional module $name is not in $version" >&2
  else
    fail "module $name is neither in $modules_dir nor built into $version"
  fi
}
: >"$root/modules/load-order"
: >"$root/modules/optional-order"
for name in "${share_modules[@]}"; do add_module "$name" load-order; done
for name in "${ktls_modules[@]}"; do add_module "$name" optional-order optional; done
: >"$root/modules/request-map"
for entry in "${requested_modules[@]}"; do
  read -r request name <<<"$entry"
  add_module "$name" "" optional
  if [[ -f $root/modules/$name.ko ]]; then echo "$request $name" >>"$root/modules/request-map"; fi
done
install -m 0755 "$here/vm-modprobe.sh" "$root/sbin/vm-modprobe"

# The loader and libraries live on the share (collect-libraries.sh).
ln -s /share/sysroot/lib "$root/lib"
ln -s /share/sysroot/lib64 "$root/lib64"
ln -s /share/sysroot/usr/lib "$root/usr/lib"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc) >"$output.tmp"
mv "$output.tmp" "$output"
echo "build-initramfs: $output ($(du -h "$output" | cut -f1), modules: $(cat "$root/modules/load-order" "$root/modules/optional-order" | tr '\n' ' ')on request: $(cut -d' ' -f2 "$root/modules/request-map" | tr '\n' ' '))" >&2
