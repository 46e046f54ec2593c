#!/bin/sh
# /init of the migration test guest (busybox sh): takes the serial console
# and runs the counter workload for as long as the guest lives. No 9p share:
# QEMU refuses to migrate a guest that has one mounted.
/bin/busybox mkdir -p /dev /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
echo "counter-guest: starting"
exec /bin/counter-guest
