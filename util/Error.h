#pragma once
// An error on a system path: what was attempted, on which path, with which
// value, and the errno the kernel returned. Every failure that reaches an
// operator carries enough to reproduce it by hand.
#include <string>

namespace Atoll {

struct Error {
  std::string operation;  // e.g. "open", "write", "parse"
  std::string path;       // file, socket or object the operation touched
  std::string value;      // value written or text that failed to parse
  int errnum = 0;         // errno, 0 when not a system call failure
  std::string detail;     // free-form explanation for non-errno failures

  static Error fromErrno(std::string operation, std::string path, int errnum,
                         std::string value = {});
  static Error invalid(std::string operation, std::string path, std::string value,
                       std::string detail);

  // "write /sys/fs/cgroup/x/cpuset.cpus value '9-12': Invalid argument (errno 22)"
  std::string message() const;
};

}  // namespace Atoll
