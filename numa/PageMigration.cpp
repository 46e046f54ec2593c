#include "numa/PageMigration.h"

#include <cerrno>

#include "numa/CpuSet.h"
#include "util/Fs.h"

namespace Atoll::numa {

namespace {
constexpr std::uint64_t kBytesPerKiB = 1024;
}

NodeBytes bytesOnNodes(const std::vector<NumaMapsEntry>& entries) {
  NodeBytes out;
  for (const auto& entry : entries) {
    for (const auto& [node, pages] : entry.pagesOnNode)
      out[node] += pages * entry.kernelPageSizeKiB * kBytesPerKiB;
  }
  return out;
}

Result<NodeBytes> processPlacement(const std::vector<pid_t>& pids, const std::string& procRoot) {
  NodeBytes total;
  for (pid_t pid : pids) {
    const std::string path = procRoot + "/" + std::to_string(pid) + "/numa_maps";
    auto text = readFile(path);
    if (!text) {
      if (text.error().errnum == ENOENT || text.error().errnum == ESRCH) continue;
      return text.error();
    }
    auto entries = parseNumaMaps(*text, path);
    if (!entries) return entries.error();
    for (const auto& [node, bytes] : bytesOnNodes(*entries)) total[node] += bytes;
  }
  return total;
}

PageMoveReport comparePlacement(NodeBytes before, NodeBytes after, const CpuList& targetNodes,
                                std::chrono::nanoseconds took) {
  auto outside = [&](const NodeBytes& placement) {
    std::uint64_t bytes = 0;
    for (const auto& [node, amount] : placement)
      if (node < 0 || !contains(targetNodes, static_cast<unsigned>(node))) bytes += amount;
    return bytes;
  };
  PageMoveReport report;
  const std::uint64_t outsideBefore = outside(before);
  const std::uint64_t outsideAfter = outside(after);
  report.bytesMoved = outsideBefore > outsideAfter ? outsideBefore - outsideAfter : 0;
  report.before = std::move(before);
  report.after = std::move(after);
  report.took = took;
  return report;
}

}  // namespace Atoll::numa
