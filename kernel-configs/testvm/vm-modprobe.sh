#!/bin/sh
# Answers the kernel's module requests in the test VM (the guest sets
# /proc/sys/kernel/modprobe to it). The kernel runs `modprobe -q -- NAME`;
# NAME, a module alias such as tcp-ulp-tls, is looked up in
# /modules/request-map ("NAME MODULE" lines) and that module inserted. Every
# request is logged to /tmp/module-requests, so tests can tell that the
# kernel asked. There is no modules.dep: mapped modules must need nothing
# that is not loaded already.
for name; do :; done
echo "$name" >>/tmp/module-requests
module=$(awk -v name="$name" '$1 == name { print $2 }' /modules/request-map)
[ -n "$module" ] || exit 1
grep -q "^$module " /proc/modules && exit 0
exec insmod "/modules/$module.ko"
