#pragma once
// Who is on the other end of a unix socket, as the kernel reports it
// (SO_PEERCRED, SO_PEERGROUPS), and who may use the local API: root and members
// of the admin group (`atoll`, when it exists) may read and change state;
// anyone else may not even read.
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "util/Result.h"

namespace Atoll {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// Reads the credentials the peer had when it connected.
Result<PeerCredentials> readPeerCredentials(int socketFd);

// The gid of a group by name; nullopt when the group does not exist.
Result<std::optional<gid_t>> lookupGroup(const std::string& name);

class AccessPolicy {
 public:
  AccessPolicy(std::optional<gid_t> adminGroup, std::string adminGroupName)
      : adminGroup_(adminGroup), adminGroupName_(std::move(adminGroupName)) {}

  bool allows(const PeerCredentials& peer) const;
  // Why a peer is refused, for the 403 body.
  std::string refusal(const PeerCredentials& peer) const;

 private:
  std::optional<gid_t> adminGroup_;
  std::string adminGroupName_;
};

}  // namespace Atoll
