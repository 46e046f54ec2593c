#include "util/Error.h"

#include <cstring>

namespace Atoll {

Error Error::fromErrno(std::string operation, std::string path, int errnum, std::string value) {
  return Error{std::move(operation), std::move(path), std::move(value), errnum, {}};
}

Error Error::invalid(std::string operation, std::string path, std::string value,
                     std::string detail) {
  return Error{std::move(operation), std::move(path), std::move(value), 0, std::move(detail)};
}

std::string Error::message() const {
  std::string out = operation;
  if (!path.empty()) out += " " + path;
  if (!value.empty()) out += " value '" + value + "'";
  if (errnum != 0) {
    out += ": ";
    out += std::strerror(errnum);
    out += " (errno " + std::to_string(errnum) + ")";
  }
  if (!detail.empty()) out += ": " + detail;
  return out;
}

}  // namespace Atoll
