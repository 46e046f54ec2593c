#include "numa/IslandMap.h"

#include <algorithm>
#include <array>

#include "numa/CpuSet.h"

namespace Atoll::numa {

namespace {

// Distinct fills for islands (colour-blind friendly), then grey for shared.
constexpr std::array<const char*, 8> kIslandColours = {"#4477aa", "#ee6677", "#228833", "#ccbb44",
                                                       "#66ccee", "#aa3377", "#ee8866", "#44bb99"};
constexpr const char* kSharedColour = "#dddddd";
constexpr int kCpuWidth = 44;
constexpr int kCpuHeight = 22;
constexpr int kPad = 6;
constexpr int kLabelHeight = 16;

std::string escapeXml(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Index of the first island holding cpu, or -1 for the shared island.
int ownerOf(const std::vector<IslandView>& islands, unsigned cpu) {
  for (std::size_t i = 0; i < islands.size(); ++i)
    if (contains(islands[i].island.cpus, cpu)) return static_cast<int>(i);
  return -1;
}

std::string membersText(const IslandView& view) {
  std::string out;
  for (const auto& member : view.members) {
    if (!out.empty()) out += ", ";
    out += std::to_string(member.pid);
    if (!member.name.empty()) out += " (" + member.name + ")";
  }
  return out.empty() ? "none" : out;
}

// Cores grouped by L3 domain inside a node; cores outside any L3 form one group.
std::vector<std::vector<const Core*>> coreGroups(const Topology& topology, const NumaNode& node) {
  std::vector<std::vector<const Core*>> groups;
  std::vector<const Core*> loose;
  for (const auto& domain : topology.l3Domains()) {
    std::vector<const Core*> group;
    for (const auto& core : topology.cores())
      if (!core.cpus.empty() && contains(node.cpus, core.cpus.front()) &&
          contains(domain.cpus, core.cpus.front()))
        group.push_back(&core);
    if (!group.empty()) groups.push_back(group);
  }
  for (const auto& core : topology.cores()) {
    if (core.cpus.empty() || !contains(node.cpus, core.cpus.front())) continue;
    bool grouped =
        std::any_of(topology.l3Domains().begin(), topology.l3Domains().end(),
                    [&](const CacheDomain& d) { return contains(d.cpus, core.cpus.front()); });
    if (!grouped) loose.push_back(&core);
  }
  if (!loose.empty()) groups.push_back(loose);
  return groups;
}

}  // namespace

std::string renderIslandMapText(const Topology& topology, const std::vector<IslandView>& islands) {
  std::string out = "Host: " + topology.summary() + "\n";
  for (const auto& node : topology.nodes()) {
    out += "NUMA node " + std::to_string(node.osIndex) + " (" +
           std::to_string(node.localMemoryBytes >> 20) + " MiB, CPUs " + formatCpuList(node.cpus) +
           ")\n";
    for (const auto& group : coreGroups(topology, node)) {
      out += "  L3:";
      for (const Core* core : group) {
        out += " [";
        for (std::size_t i = 0; i < core->cpus.size(); ++i) {
          int owner = ownerOf(islands, core->cpus[i]);
          out += (i ? " " : "") + std::to_string(core->cpus[i]) + ":" +
                 (owner < 0 ? std::string(kSharedIslandName) : islands[owner].island.name);
        }
        out += "]";
      }
      out += "\n";
    }
  }
  std::vector<Island> plain;
  for (const auto& view : islands) plain.push_back(view.island);
  out += "Islands:\n";
  for (const auto& view : islands) {
    const Island& island = view.island;
    out += "  " + island.name + ": CPUs " + formatCpuList(island.cpus) + ", memory nodes " +
           formatCpuList(island.memNodes) + ", " +
           std::string(exclusivityName(island.exclusivity)) + ", members " + membersText(view) +
           "\n";
  }
  out += "  " + std::string(kSharedIslandName) + ": CPUs " +
         formatCpuList(sharedCpus(topology, plain)) + "\n";
  return out;
}

std::string renderIslandMapSvg(const Topology& topology, const std::vector<IslandView>& islands) {
  std::string body;
  int y = kPad;
  int width = 0;
  auto rect = [&](int x, int top, int w, int h, const std::string& fill, const std::string& cls) {
    body += "<rect class=\"" + cls + "\" x=\"" + std::to_string(x) + "\" y=\"" +
            std::to_string(top) + "\" width=\"" + std::to_string(w) + "\" height=\"" +
            std::to_string(h) + "\" fill=\"" + fill + "\" stroke=\"#333\"/>\n";
  };
  auto text = [&](int x, int top, const std::string& content) {
    body += "<text x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(top) +
            "\" font-family=\"sans-serif\" font-size=\"11\">" + escapeXml(content) + "</text>\n";
  };
  for (const auto& node : topology.nodes()) {
    const auto groups = coreGroups(topology, node);
    int groupWidths = 0;
    std::vector<int> widths;
    for (const auto& group : groups) {
      int w = kPad;
      for (const Core* core : group) w += int(core->cpus.size()) * kCpuWidth + 2 * kPad + kPad;
      widths.push_back(w);
      groupWidths += w + kPad;
    }
    const int nodeWidth = std::max(groupWidths + kPad, 260);
    const int groupHeight = kLabelHeight + kCpuHeight + 3 * kPad + kLabelHeight;
    const int nodeHeight = kLabelHeight + groupHeight + 2 * kPad;
    rect(kPad, y, nodeWidth, nodeHeight, "#f4f4f4", "numa-node");
    text(2 * kPad, y + kLabelHeight - 3,
         "NUMA node " + std::to_string(node.osIndex) + " (" +
             std::to_string(node.localMemoryBytes >> 20) + " MiB)");
    int x = 2 * kPad;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const int top = y + kLabelHeight + kPad;
      rect(x, top, widths[g], groupHeight, "#ffffff", "l3");
      text(x + kPad, top + kLabelHeight - 3, "L3");
      int coreX = x + kPad;
      for (const Core* core : groups[g]) {
        const int coreWidth = int(core->cpus.size()) * kCpuWidth + 2 * kPad;
        const int coreTop = top + kLabelHeight;
        rect(coreX, coreTop, coreWidth, kCpuHeight + 2 * kPad, "#eeeeee", "core");
        int cpuX = coreX + kPad;
        for (unsigned cpu : core->cpus) {
          const int owner = ownerOf(islands, cpu);
          const std::string fill =
              owner < 0 ? kSharedColour : kIslandColours[owner % kIslandColours.size()];
          rect(cpuX, coreTop + kPad, kCpuWidth - 2, kCpuHeight, fill, "cpu");
          text(cpuX + 4, coreTop + kPad + 15, "PU " + std::to_string(cpu));
          cpuX += kCpuWidth;
        }
        coreX += coreWidth + kPad;
      }
      x += widths[g] + kPad;
    }
    width = std::max(width, nodeWidth + 2 * kPad);
    y += nodeHeight + kPad;
  }
  std::vector<Island> plain;
  for (const auto& view : islands) plain.push_back(view.island);
  y += kPad;
  for (std::size_t i = 0; i <= islands.size(); ++i) {
    const bool shared = i == islands.size();
    const std::string fill = shared ? kSharedColour : kIslandColours[i % kIslandColours.size()];
    rect(kPad, y, 14, 14, fill, "legend");
    const std::string label =
        shared ? std::string(kSharedIslandName) + ": CPUs " +
                     formatCpuList(sharedCpus(topology, plain))
               : islands[i].island.name + ": CPUs " + formatCpuList(islands[i].island.cpus) +
                     ", memory nodes " + formatCpuList(islands[i].island.memNodes) + ", " +
                     std::string(exclusivityName(islands[i].island.exclusivity)) + ", members " +
                     membersText(islands[i]);
    text(kPad + 20, y + 11, label);
    width = std::max(width, kPad + 20 + int(label.size()) * 7);
    y += 20;
  }
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) +
         "\" height=\"" + std::to_string(y + kPad) + "\">\n<title>" +
         escapeXml("Islands on " + topology.summary()) + "</title>\n" + body + "</svg>\n";
}

}  // namespace Atoll::numa
