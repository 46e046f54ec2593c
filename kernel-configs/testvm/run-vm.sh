#!/usr/bin/env bash
# Boots the test VM once and runs every in-VM test binary inside it: Debian's
# stock kernel under QEMU TCG with 4 CPUs in two NUMA nodes and full cgroup
# v2. Results land in WORK/share/results/ (one JSON report, log and exit
# status per binary); the guest console is saved to WORK/guest.log and printed.
#
#   run-vm.sh --work DIR --manifest FILE [--kernel-cache DIR]
#             [--timeout SECONDS] [--binary-timeout SECONDS]
#
# The manifest has one line per binary: "test|extra<TAB>NAME<TAB>PATH", and
# for a test binary that needs longer than --binary-timeout, "<TAB>SECONDS",
# its own limit. Test binaries are gtest binaries the guest runs; extra
# binaries (the atoll CLI) are only shipped, for tests to run. Exits 0 when
# the guest reported that it finished, whatever the tests' verdicts (each
# case is a ctest test of its own).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=
manifest=
kernel_cache=
boot_timeout=120
binary_timeout=60
fetch_timeout=300

usage() {
  echo "usage: run-vm.sh --work DIR --manifest FILE [--kernel-cache DIR] [--timeout S] [--binary-timeout S]" >&2
  exit 2
}
while (($#)); do
  case $1 in
    --work) work=$2 ;;
    --manifest) manifest=$2 ;;
    --kernel-cache) kernel_cache=$2 ;;
    --timeout) boot_timeout=$2 ;;
    --binary-timeout) binary_timeout=$2 ;;
    *) usage ;;
  esac
  shift 2 || usage
done
[[ -n $work && -n $manifest ]] || usage
[[ $boot_timeout =~ ^[0-9]+$ ]] || { echo "run-vm: --timeout '$boot_timeout' is not a number of seconds" >&2; exit 2; }
[[ $binary_timeout =~ ^[0-9]+$ ]] || { echo "run-vm: --binary-timeout '$binary_timeout' is not a number of seconds" >&2; exit 2; }
mkdir -p "$work"
work=$(cd "$work" && pwd)
kernel_cache=${kernel_cache:-$work/kernel}

fail() {
  echo "run-vm: FAILED: $*" >&2
  exit 1
}

exec 9>"$work/lock"
flock -n 9 || fail "another test VM run holds $work/lock"

for tool in qemu-system-x86_64 flock timeout; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/install-deps.sh installs it)"
done

# Results of an earlier run must never be read as this run's.
share=$work/share
rm -rf "$share"

# 1. The guest kernel, fetched once into the cache.
kernel_dir=$(timeout "$fetch_timeout" "$here/fetch-kernel.sh" "$kernel_cache") ||
  fail "could not fetch the guest kernel into $kernel_cache"
version=$(cat "$kernel_dir/unpacked.stamp")
vmlinuz=$kernel_dir/boot/vmlinuz-$version

# 2. The share: binaries, the list of tests, settings, an empty results folder.
mkdir -p "$share/bin" "$share/results"
binaries=()
: >"$share/tests.list"
while IFS=$'\t' read -r kind name path limit; do
  [[ -z $kind ]] && continue
  if [[ ! -x $path ]]; then
    # Its cases fail on their own (ctest registers vm.NAME.NOT_BUILT, and
    # tests using a missing tool fail to run it); the others still run.
    echo "run-vm: $name is not built ($path); not shipped to the guest" >&2
    continue
  fi
  cp "$path" "$share/bin/$name"
  binaries+=("$path")
  case $kind in
    test)
      [[ -z $limit || $limit =~ ^[0-9]+$ ]] ||
        fail "manifest $manifest: limit '$limit' of $name is not a number of seconds"
      echo "$name ${limit:-$binary_timeout}" >>"$share/tests.list"
      ;;
    extra) ;;
    *) fail "manifest $manifest: unknown kind '$kind' for $name" ;;
  esac
done <"$manifest"
echo "ATOLL_VM_BINARY_TIMEOUT=$binary_timeout" >"$share/vm.conf"

# 3. Their libraries, and the initramfs.
"$here/collect-libraries.sh" "$share/sysroot" "${binaries[@]}" ||
  fail "could not collect the binaries' shared libraries"
initramfs=$work/initramfs.cpio
"$here/build-initramfs.sh" "$kernel_dir" "$here/guest-init.sh" "$initramfs" ||
  fail "could not build the initramfs"

# 4. One boot for all tests.
guest_log=$work/guest.log
qemu_log=$work/qemu.log
rm -f "$guest_log" "$qemu_log"
echo "run-vm: booting $version ($(wc -l <"$share/tests.list") test binaries, limit ${boot_timeout}s)"
# shellcheck disable=SC2054 # commas separate QEMU sub-options
qemu=(qemu-system-x86_64
  -nodefaults -display none -no-reboot
  -machine pc,acpi=on
  -accel tcg,thread=multi -cpu max
  -smp 4 -m 1G
  -object memory-backend-ram,id=m0,size=512M -numa node,nodeid=0,cpus=0-1,memdev=m0
  -object memory-backend-ram,id=m1,size=512M -numa node,nodeid=1,cpus=2-3,memdev=m1
  -kernel "$vmlinuz" -initrd "$initramfs"
  -append "console=ttyS0 quiet panic=-1 no_timer_check"
  -serial "file:$guest_log"
  -virtfs "local,path=$share,mount_tag=share,security_model=none")
# A TCG guest on a heavily loaded host can panic in early boot (timer checks)
# before any test has run; such a boot is retried once. A crash after a test
# started is never retried: it is a result.
for attempt in 1 2; do
  start=$SECONDS
  status=0
  timeout --kill-after=5 "$boot_timeout" "${qemu[@]}" </dev/null >"$qemu_log" 2>&1 || status=$?
  elapsed=$((SECONDS - start))
  if [[ ! -f $share/results/finished ]] && ! compgen -G "$share/results/*.rc" >/dev/null &&
    grep -q -m 1 'Kernel panic' "$guest_log" 2>/dev/null && ((attempt == 1)); then
    echo "run-vm: the guest panicked during boot before any test ran; booting once more"
    sed -n '/Kernel panic/p' "$guest_log"
    rm -f "$guest_log" "$qemu_log"
    continue
  fi
  break
done

echo "----- guest console ($guest_log) -----"
cat "$guest_log" 2>/dev/null || true
echo "----- end of guest console -----"
if [[ -s $qemu_log ]]; then
  echo "----- qemu ($qemu_log) -----"
  cat "$qemu_log"
fi

if [[ -f $share/results/finished ]]; then
  echo "run-vm: guest finished in ${elapsed}s"
  while read -r name _; do
    echo "run-vm: $name exit $(cat "$share/results/$name.rc" 2>/dev/null || echo '(none)')"
  done <"$share/tests.list"
  exit 0
fi
panic=$(grep -m 1 -E 'Kernel panic|BUG:|Oops' "$guest_log" 2>/dev/null || true)
if [[ -n $panic ]]; then
  fail "the guest kernel crashed after ${elapsed}s: $panic"
elif ((status == 124 || status == 137)); then
  fail "the test VM did not finish within ${boot_timeout}s and was killed (last guest line: $(tail -n 1 "$guest_log" 2>/dev/null))"
elif ((status != 0)); then
  fail "qemu exited with status $status after ${elapsed}s (see $qemu_log above)"
else
  fail "the guest powered off after ${elapsed}s without reporting that it finished (last guest line: $(tail -n 1 "$guest_log" 2>/dev/null))"
fi
