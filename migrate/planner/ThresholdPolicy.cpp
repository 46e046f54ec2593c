#include "migrate/planner/ThresholdPolicy.h"

#include <algorithm>
#include <cmath>

#include "numa/CpuSet.h"
#include "numa/IslandAllocator.h"

namespace Atoll::planner {

ThresholdPolicy::ThresholdPolicy(ThresholdConfig config, const PlannerConfig& guards)
    : config_(config), guards_(guards) {}

bool ThresholdPolicy::allowed(int64_t nowNs, const std::string& island) const {
  int host = 0, mine = 0;
  for (const Move& m : moves_) {
    if (m.atNs <= nowNs - guards_.budgetWindowNs) continue;
    ++host;
    if (m.from == island || m.to == island) {
      ++mine;
      if (nowNs - m.atNs < guards_.minDwellNs) return false;  // cooldown
    }
  }
  return host < guards_.hostMovesPerWindow && mine < guards_.islandMovesPerWindow;
}

std::vector<ThresholdResize> ThresholdPolicy::decide(int64_t nowNs,
                                                     const std::vector<ThresholdIsland>& islands,
                                                     const numa::Topology* topology) {
  std::vector<ThresholdResize> out;
  std::erase_if(moves_, [&](const Move& m) {
    return m.atNs <= nowNs - std::max(guards_.budgetWindowNs, guards_.minDwellNs);
  });
  std::vector<double> capacity(islands.size());
  std::vector<bool> busy(islands.size(), false);
  for (size_t i = 0; i < islands.size(); ++i) capacity[i] = double(islands[i].cpus.size());
  auto util = [&](size_t i) {
    return capacity[i] > 0 ? islands[i].observedCores / capacity[i] : 0.0;
  };
  std::vector<size_t> hot;
  for (size_t i = 0; i < islands.size(); ++i)
    if (util(i) > config_.upper) hot.push_back(i);
  std::sort(hot.begin(), hot.end(), [&](size_t a, size_t b) { return util(a) > util(b); });
  for (size_t r : hot) {
    if (busy[r] || !allowed(nowNs, islands[r].name)) continue;
    const double want = std::ceil(islands[r].observedCores / config_.target - capacity[r]);
    const unsigned need =
        static_cast<unsigned>(std::clamp(want, 1.0, double(config_.maxCpusPerResize)));
    // The least utilised island that can give and stay at or below donorMax.
    std::vector<size_t> donors;
    for (size_t d = 0; d < islands.size(); ++d)
      if (d != r && !busy[d] && islands[d].cpus.size() > 1 && allowed(nowNs, islands[d].name))
        donors.push_back(d);
    std::sort(donors.begin(), donors.end(),
              [&](size_t a, size_t b) { return util(a) != util(b) ? util(a) < util(b) : a < b; });
    for (size_t d : donors) {
      const double keep = std::ceil(islands[d].observedCores / config_.donorMax);
      const double spare = capacity[d] - std::max(keep, 1.0);
      if (spare < 1) continue;
      const unsigned count = std::min(need, static_cast<unsigned>(spare));
      numa::CpuList freed;
      if (topology != nullptr) {
        numa::IslandAllocator allocator(*topology, {});
        auto shrunk = allocator.shrink(islands[d].name, islands[d].cpus, count);
        if (!shrunk) continue;
        freed = numa::differenceOf(islands[d].cpus, shrunk->cpus);
      } else {
        freed.assign(islands[d].cpus.end() - count, islands[d].cpus.end());
      }
      if (freed.empty() || double(freed.size()) > spare) continue;
      out.push_back({d, r, freed});
      moves_.push_back({nowNs, islands[d].name, islands[r].name});
      busy[r] = busy[d] = true;
      break;
    }
  }
  return out;
}

}  // namespace Atoll::planner
