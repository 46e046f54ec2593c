#include "runtime/PeerCredentials.h"

#include <grp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59  // Linux 4.13; older libc headers lack the name
#endif

namespace Atoll {

Result<PeerCredentials> readPeerCredentials(int socketFd) {
  ucred cred{};
  socklen_t length = sizeof cred;
  if (::getsockopt(socketFd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0)
    return Error::fromErrno("getsockopt SO_PEERCRED", "fd " + std::to_string(socketFd), errno);
  PeerCredentials peer{cred.pid, cred.uid, cred.gid, {}};

  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(socketFd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      peer.groups = std::move(groups);
      return peer;
    }
    if (errno != ERANGE)
      return Error::fromErrno("getsockopt SO_PEERGROUPS", "fd " + std::to_string(socketFd), errno);
    groups.resize(bytes / sizeof(gid_t) + 1);  // the kernel reported the size it needs
  }
  return Error::fromErrno("getsockopt SO_PEERGROUPS", "fd " + std::to_string(socketFd), ERANGE);
}

Result<std::optional<gid_t>> lookupGroup(const std::string& name) {
  if (name.empty()) return std::optional<gid_t>{};
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  for (;;) {
    int rc = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < (1u << 22)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    // "No such group" comes back as 0 with no entry, or (glibc without an
    // /etc/group, other NSS modules) as one of these, as getgrnam_r(3) notes.
    if (rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM) return std::optional<gid_t>{};
    if (rc != 0) return Error::fromErrno("getgrnam", "/etc/group", rc, name);
    break;
  }
  if (found == nullptr) return std::optional<gid_t>{};
  return std::optional<gid_t>(found->gr_gid);
}

bool AccessPolicy::allows(const PeerCredentials& peer) const {
  if (peer.uid == 0) return true;
  if (!adminGroup_) return false;
  return peer.gid == *adminGroup_ ||
         std::find(peer.groups.begin(), peer.groups.end(), *adminGroup_) != peer.groups.end();
}

std::string AccessPolicy::refusal(const PeerCredentials& peer) const {
  std::string who = "uid " + std::to_string(peer.uid) + " (pid " + std::to_string(peer.pid) + ")";
  if (adminGroup_) return who + " is neither root nor a member of group '" + adminGroupName_ + "'";
  return who + " is not root, and group '" + adminGroupName_ + "' does not exist on this host";
}

}  // namespace Atoll
