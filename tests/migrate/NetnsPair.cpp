#include "NetnsPair.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace Atoll::transfer::testing {

int shell(const std::string& command) {
  int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

NetnsPair::NetnsPair() {
  std::string tag = std::to_string(::getpid());
  a_ = "atoll-mig-" + tag + "-a";
  b_ = "atoll-mig-" + tag + "-b";
  std::string vethA = "amig" + tag + "a", vethB = "amig" + tag + "b";
  if (vethA.size() > 15) {
    vethA = vethA.substr(vethA.size() - 15);
    vethB = vethB.substr(vethB.size() - 15);
  }
  const std::string quiet = " >/dev/null 2>&1";
  std::string script =
      "ip netns add " + a_ + " && ip netns add " + b_ + " && ip link add " + vethA + " netns " +
      a_ + " type veth peer name " + vethB + " netns " + b_ + " && ip -n " + a_ + " addr add " +
      kAddressA + "/30 dev " + vethA + " && ip -n " + b_ + " addr add " + kAddressB + "/30 dev " +
      vethB + " && ip -n " + a_ + " link set " + vethA + " up && ip -n " + b_ + " link set " +
      vethB + " up && ip -n " + a_ + " link set lo up && ip -n " + b_ + " link set lo up";
  if (shell("command -v ip >/dev/null") != 0) {
    error_ = "iproute2 (ip) is not installed";
    return;
  }
  if (shell(script + quiet) != 0) {
    error_ =
        "cannot create network namespaces and a veth pair (needs root and CONFIG_VETH): " + script;
    return;
  }
  // Wait until the link reports carrier (IPv4 needs no DAD).
  for (int i = 0; i < 50; ++i) {
    if (shell("ip -n " + a_ + " link show dev " + vethA + " | grep -q LOWER_UP") == 0) break;
    ::usleep(100000);
  }
  vethA_ = vethA;
  ok_ = true;
}

NetnsPair::~NetnsPair() {
  shell("ip netns del " + a_ + " >/dev/null 2>&1");
  shell("ip netns del " + b_ + " >/dev/null 2>&1");
}

bool NetnsPair::enter(const std::string& name) {
  int fd = ::open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::setns(fd, CLONE_NEWNET) == 0;
  ::close(fd);
  return ok;
}

void NetnsPair::runIn(const std::string& name, const std::function<void()>& fn) {
  std::thread worker([&] {
    if (!enter(name)) std::abort();
    fn();
  });
  worker.join();
}

bool NetnsPair::cutLink() const {
  return shell("ip -n " + a_ + " link set " + vethA_ + " down") == 0;
}

}  // namespace Atoll::transfer::testing
