#!/usr/bin/env bash
# Fails when any C/C++ source differs from its clang-format style (root
# .clang-format for user space, bpf/.clang-format for BPF programs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mapfile -t files < <(git ls-files '*.h' '*.hpp' '*.c' '*.cpp' | grep -v '^bpf-gen/')
if ((${#files[@]} == 0)); then exit 0; fi
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
clang-format --dry-run -Werror "${files[@]}"
echo "check-format: ${#files[@]} files clean"
