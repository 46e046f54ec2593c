#!/usr/bin/env bash
# Installs every build, run and test dependency from Debian's archive.
# Nothing is downloaded from anywhere else.
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: run as root (apt-get install)" >&2
  exit 1
fi
packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang llvm clang-format
  # kernel interfaces
  libbpf-dev bpftool libelf-dev zlib1g-dev liburing-dev libnuma-dev libhwloc-dev hwloc
  libvirt-dev libssl-dev libxxhash-dev
  # plumbing
  libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev
  libcpp-httplib-dev prometheus-cpp-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # transfer engine tests and benchmarks: network namespaces, test
  # certificates, reference tools measured in the same run
  iproute2 openssl iperf3 rsync
  # forecaster evaluation (forecast/eval, run with /usr/bin/python3)
  python3-numpy python3-pandas python3-statsmodels
  # test VM: QEMU with TCG, busybox for the initramfs (the guest kernel is
  # fetched with apt-get download by the build, not installed)
  qemu-system-x86 busybox-static
  # libvirt and QEMU services started by tests themselves
  libvirt-daemon-system libvirt-clients
)
# vector AES-GCM for TLS records (Debian builds it for amd64 only; elsewhere
# OpenSSL's AES-GCM protects them)
if [[ $(dpkg --print-architecture) == amd64 ]]; then
  packages+=(libipsec-mb-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} packages present"
fi
