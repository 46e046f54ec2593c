#pragma once
// Defaults the daemon and the CLI must agree on, in one place.
namespace Atoll {

// The local API's unix socket (systemd's RuntimeDirectory=atoll).
inline constexpr const char* kDefaultSocketPath = "/run/atoll/atolld.sock";
// Members of this group may use the API besides root (when the group exists).
inline constexpr const char* kDefaultAdminGroup = "atoll";

}  // namespace Atoll
