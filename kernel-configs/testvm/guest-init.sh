#!/bin/sh
# /init of the test VM (busybox sh). Mounts the kernel filesystems and the 9p
# share, enables the cgroup v2 controllers, logs the guest's kernel and NUMA
# layout, runs every test binary listed in /share/tests.list with its JSON
# report and its output written to /share/results/, and powers off.
#
# Every line meant for the host starts with "atoll-vm:". The host trusts only
# /share/results/finished, written after the last binary, to know the run
# completed.

/bin/busybox mkdir -p /dev
/bin/busybox mount -t devtmpfs devtmpfs /dev
# The initramfs has no /dev/console node, so the kernel could not give init
# a console: take it now that devtmpfs is there.
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/tmp

say() { echo "atoll-vm: $*"; }
stop() {
  say "$*"
  sync
  poweroff -f
}

mount -t proc proc /proc || stop "cannot mount /proc"
mount -t sysfs sysfs /sys || stop "cannot mount /sys"
mount -t tmpfs tmpfs /tmp || stop "cannot mount /tmp"

while read -r module; do
  insmod "/modules/$module.ko" || stop "insmod $module failed"
done </modules/load-order
# Modules some tests need (kernel TLS); those tests skip without them.
while read -r module; do
  insmod "/modules/$module.ko" || say "insmod $module failed; tests that need it will skip"
done </modules/optional-order
# The kernel's own module requests go to vm-modprobe (there is no module
# tree for modprobe here); tests read what was asked in the request log.
echo /sbin/vm-modprobe >/proc/sys/kernel/modprobe || say "cannot set /proc/sys/kernel/modprobe"
export ATOLL_VM_MODULE_REQUESTS=/tmp/module-requests
# Tests expect kernel TLS to load where the VM ships its module.
if grep -q "^tcp-ulp-tls " /modules/request-map; then export ATOLL_VM_KERNEL_TLS=1; fi
# cache=mmap: binaries and libraries (mapped) are read once into the page
# cache instead of page by page over 9p; plain writes (results) go straight
# to the host.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap share /share ||
  stop "cannot mount the 9p share (mount_tag share)"

mount -t cgroup2 cgroup2 /sys/fs/cgroup || stop "cannot mount cgroup2 at /sys/fs/cgroup"
echo "+cpuset +cpu +memory +io +pids" >/sys/fs/cgroup/cgroup.subtree_control ||
  stop "cannot enable cpuset cpu memory io pids in /sys/fs/cgroup/cgroup.subtree_control"

# Loopback, for tests that connect over 127.0.0.1.
ip link set lo up || say "cannot bring up lo; tests on 127.0.0.1 will fail"
say "kernel $(uname -r)"
say "cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
say "cgroup2 subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
for node in /sys/devices/system/node/node[0-9]*; do
  memory=$(awk '/MemTotal/ { print $4 " " $5 }' "$node/meminfo")
  say "numa $(basename "$node") cpus $(cat "$node/cpulist") memory $memory"
done

# Settings written by the host: ATOLL_VM_BINARY_TIMEOUT.
# shellcheck source=/dev/null
. /share/vm.conf
# In-VM tests run shipped tools through these (set even when the host could
# not ship the tool, so that such tests fail rather than skip).
export ATOLL_VM_BIN=/share/bin
export ATOLL_CLI=/share/bin/atoll
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu

results=/share/results
cd /tmp || stop "cannot enter /tmp"
# One "NAME LIMIT" line per test binary (LIMIT: its limit in seconds).
while read -r name limit; do
  limit=${limit:-$ATOLL_VM_BINARY_TIMEOUT}
  say "run $name"
  timeout -s KILL "$limit" "/share/bin/$name" \
    "--gtest_output=json:$results/$name.json" </dev/null >"/tmp/$name.log" 2>&1
  status=$?
  if [ "$status" = 137 ]; then
    echo "atoll-vm: $name was killed (SIGKILL): it ran past ${limit}s or ran out of memory" >>"/tmp/$name.log"
  fi
  cp "/tmp/$name.log" "$results/$name.log"
  echo "$status" >"$results/$name.rc"
  cat "/tmp/$name.log"
  say "$name exit $status"
done </share/tests.list

echo finished >"$results/finished"
say "finished"
sync
umount /share
poweroff -f
