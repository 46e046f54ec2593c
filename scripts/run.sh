#!/usr/bin/env bash
# Sets up this host, builds Atoll and runs its main job in the foreground.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATOLL_BUILD_TESTS=OFF -DATOLL_BUILD_BENCH=OFF >/dev/null
echo "run: built $(build/runtime/atolld --version) and $(build/tools/atoll --version)"
# The main job: atolld in the foreground on its built-in defaults: telemetry
# of every libvirt domain and every cgroup under machine.slice/* of the cgroup2
# mount, their forecasts (host and islands too), islands from the
# configuration (enforced where cgroup v2 has the cpuset controller). API
# socket /run/atoll/atolld.sock, metrics on 127.0.0.1:9464, journal and
# snapshot in /var/lib/atoll, logs on stderr. Arguments go to atolld, e.g.
# `--config runtime/atolld.example.toml`. From another shell:
# `build/tools/atoll status`, `atoll top`, `atoll forecast show VM`,
# `atoll island map`. Ctrl-C or SIGTERM drains and stops it.
exec build/runtime/atolld "$@"
