#pragma once
// For the in-VM island tests: a forked child that maps and touches a known
// amount of memory when told to (so its pages land where its island's
// memory nodes say at that moment), reports the mapping's address, and
// lives until the test lets it go; and where that mapping's pages sit.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "numa/NumaMaps.h"
#include "util/Fs.h"

namespace Atoll::numa::test {

inline constexpr std::size_t kTouchedBytes = std::size_t{32} << 20;
inline constexpr int kChildReplyTimeoutMs = 30'000;

class TouchingChild {
 public:
  TouchingChild() {
    if (::pipe2(control_, O_CLOEXEC) != 0 || ::pipe2(reply_, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) runChild();
    ::close(control_[0]);
    ::close(reply_[1]);
  }
  ~TouchingChild() {
    ::close(control_[1]);
    ::close(reply_[0]);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  TouchingChild(const TouchingChild&) = delete;
  TouchingChild& operator=(const TouchingChild&) = delete;
  pid_t pid() const { return pid_; }

  // The touched mapping's start address, or 0 when the child failed.
  std::uint64_t touchMemory() {
    char go = 'g';
    if (::write(control_[1], &go, 1) != 1) return 0;
    pollfd ready{reply_[0], POLLIN, 0};
    if (::poll(&ready, 1, kChildReplyTimeoutMs) != 1) return 0;
    std::uint64_t address = 0;
    if (::read(reply_[0], &address, sizeof address) != sizeof address) return 0;
    return address;
  }

 private:
  [[noreturn]] void runChild() {
    char go;
    if (::read(control_[0], &go, 1) != 1) ::_exit(1);
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    // Guard pages on both sides keep the kernel from merging the mapping
    // with a neighbour, so numa_maps shows it on a line of its own.
    void* region =
        ::mmap(nullptr, kTouchedBytes + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    std::uint64_t address = 0;
    if (region != MAP_FAILED) {
      char* touched = static_cast<char*>(region) + page;
      if (::mprotect(touched, kTouchedBytes, PROT_READ | PROT_WRITE) == 0) {
        std::memset(touched, 0x5a, kTouchedBytes);
        address = reinterpret_cast<std::uintptr_t>(touched);
      }
    }
    if (::write(reply_[1], &address, sizeof address) != sizeof address) ::_exit(1);
    while (::read(control_[0], &go, 1) > 0) {
    }
    ::_exit(0);
  }

  int control_[2] = {-1, -1};
  int reply_[2] = {-1, -1};
  pid_t pid_ = -1;
};

// Pages of the child's touched mapping on `node`, and in total.
inline std::pair<std::uint64_t, std::uint64_t> pagesOfMapping(pid_t pid, std::uint64_t address,
                                                              int node) {
  const std::string path = "/proc/" + std::to_string(pid) + "/numa_maps";
  auto text = readFile(path);
  if (!text) return {0, 0};
  auto maps = parseNumaMaps(*text, path);
  if (!maps) return {0, 0};
  const NumaMapsEntry* entry = findMapping(*maps, address);
  if (entry == nullptr) return {0, 0};
  std::uint64_t total = 0;
  for (const auto& [n, pages] : entry->pagesOnNode) total += pages;
  return {entry->pagesOn(node), total};
}

}  // namespace Atoll::numa::test
