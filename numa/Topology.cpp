#include "numa/Topology.h"

#include <hwloc.h>
#include <hwloc/distances.h>

#include <algorithm>
#include <cerrno>
#include <functional>

namespace Atoll::numa {

namespace {

CpuList cpusOf(hwloc_const_bitmap_t set) {
  CpuList out;
  if (set == nullptr) return out;
  int index;
  hwloc_bitmap_foreach_begin(index, set) {
    out.push_back(static_cast<unsigned>(index));
  }
  hwloc_bitmap_foreach_end();
  return out;
}

std::string plural(std::size_t count, std::string_view noun) {
  std::string out = std::to_string(count) + " " + std::string(noun);
  if (count != 1) out += "s";
  return out;
}

// Owns an hwloc topology for the duration of one load.
class HwlocHandle {
 public:
  HwlocHandle() = default;
  HwlocHandle(const HwlocHandle&) = delete;
  HwlocHandle& operator=(const HwlocHandle&) = delete;
  ~HwlocHandle() {
    if (topology_ != nullptr) hwloc_topology_destroy(topology_);
  }
  hwloc_topology_t* out() { return &topology_; }
  hwloc_topology_t get() const { return topology_; }

 private:
  hwloc_topology_t topology_ = nullptr;
};

}  // namespace

class TopologyLoader {
 public:
  // configure selects the discovery source; it returns 0 or -1 with errno.
  static Result<Topology> load(const std::string& source,
                               const std::function<int(hwloc_topology_t)>& configure) {
    HwlocHandle handle;
    if (hwloc_topology_init(handle.out()) != 0)
      return Error::fromErrno("hwloc_topology_init", source, errno);
    if (configure(handle.get()) != 0) return Error::fromErrno("hwloc source", source, errno);
    errno = 0;
    if (hwloc_topology_load(handle.get()) != 0)
      return Error::fromErrno("hwloc_topology_load", source, errno != 0 ? errno : EINVAL);
    return snapshot(handle.get(), source);
  }

 private:
  static Result<Topology> snapshot(hwloc_topology_t topology, const std::string& source) {
    Topology out;
    out.source_ = source;
    auto each = [&](hwloc_obj_type_t type, const auto& visit) {
      int count = hwloc_get_nbobjs_by_type(topology, type);
      for (int i = 0; i < count; ++i) visit(hwloc_get_obj_by_type(topology, type, i));
    };
    each(HWLOC_OBJ_NUMANODE, [&](hwloc_obj_t obj) {
      out.nodes_.push_back(
          NumaNode{obj->os_index, cpusOf(obj->cpuset), obj->attr->numanode.local_memory});
    });
    each(HWLOC_OBJ_PACKAGE, [&](hwloc_obj_t obj) {
      out.packages_.push_back(Package{obj->os_index, cpusOf(obj->cpuset)});
    });
    each(HWLOC_OBJ_CORE, [&](hwloc_obj_t obj) { out.cores_.push_back(Core{cpusOf(obj->cpuset)}); });
    each(HWLOC_OBJ_L3CACHE, [&](hwloc_obj_t obj) {
      out.l3Domains_.push_back(CacheDomain{obj->attr->cache.size, cpusOf(obj->cpuset)});
    });
    each(HWLOC_OBJ_PU, [&](hwloc_obj_t obj) { out.cpus_.push_back(obj->os_index); });
    std::sort(out.cpus_.begin(), out.cpus_.end());
    std::sort(out.nodes_.begin(), out.nodes_.end(),
              [](const NumaNode& a, const NumaNode& b) { return a.osIndex < b.osIndex; });
    if (out.cpus_.empty())
      return Error::invalid("hwloc_topology_load", source, {}, "topology has no processing units");
    if (out.nodes_.empty())
      return Error::invalid("hwloc_topology_load", source, {}, "topology has no NUMA node");
    out.distances_ = nodeDistances(topology, out.nodes_);
    return out;
  }

  // The NUMA latency matrix in the order of `nodes` (sorted by OS index).
  static std::vector<unsigned> nodeDistances(hwloc_topology_t topology,
                                             const std::vector<NumaNode>& nodes) {
    hwloc_distances_s* matrix = nullptr;
    unsigned found = 1;
    if (hwloc_distances_get_by_type(topology, HWLOC_OBJ_NUMANODE, &found, &matrix,
                                    HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) != 0 ||
        found == 0 || matrix == nullptr)
      return {};
    std::vector<unsigned> out(nodes.size() * nodes.size(), 0);
    auto position = [&](hwloc_obj_t obj) -> std::optional<std::size_t> {
      for (std::size_t i = 0; i < nodes.size(); ++i)
        if (nodes[i].osIndex == obj->os_index) return i;
      return std::nullopt;
    };
    std::size_t filled = 0;
    for (unsigned i = 0; i < matrix->nbobjs; ++i) {
      for (unsigned j = 0; j < matrix->nbobjs; ++j) {
        auto from = position(matrix->objs[i]);
        auto to = position(matrix->objs[j]);
        if (!from || !to) continue;
        out[*from * nodes.size() + *to] =
            static_cast<unsigned>(matrix->values[i * matrix->nbobjs + j]);
        ++filled;
      }
    }
    hwloc_distances_release(topology, matrix);
    // A partial matrix would make some pairs look closer than they are.
    if (filled != out.size()) return {};
    return out;
  }
};

Result<Topology> Topology::fromHost() {
  return TopologyLoader::load("host", [](hwloc_topology_t topology) {
    // Atoll places work on the whole machine, not just where it runs itself.
    return hwloc_topology_set_flags(topology, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  });
}

Result<Topology> Topology::fromXmlFile(const std::string& path) {
  return TopologyLoader::load(path, [&](hwloc_topology_t topology) {
    return hwloc_topology_set_xml(topology, path.c_str());
  });
}

Result<Topology> Topology::fromXml(std::string_view xml) {
  // hwloc wants the terminating NUL counted in the length.
  std::string buffer(xml);
  return TopologyLoader::load("xml buffer", [&](hwloc_topology_t topology) {
    return hwloc_topology_set_xmlbuffer(topology, buffer.c_str(),
                                        static_cast<int>(buffer.size() + 1));
  });
}

std::optional<unsigned> Topology::nodeOfCpu(unsigned cpu) const {
  for (const auto& node : nodes_)
    if (std::binary_search(node.cpus.begin(), node.cpus.end(), cpu)) return node.osIndex;
  return std::nullopt;
}

unsigned Topology::distance(unsigned fromNode, unsigned toNode) const {
  constexpr unsigned kLocal = 10;
  constexpr unsigned kRemote = 20;
  auto position = [&](unsigned osIndex) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].osIndex == osIndex) return i;
    return std::nullopt;
  };
  auto from = position(fromNode);
  auto to = position(toNode);
  if (distances_.empty() || !from || !to) return fromNode == toNode ? kLocal : kRemote;
  return distances_[*from * nodes_.size() + *to];
}

std::string Topology::summary() const {
  return plural(nodes_.size(), "NUMA node") + ", " + plural(packages_.size(), "package") + ", " +
         plural(cores_.size(), "core") + ", " + plural(cpus_.size(), "PU") + ", " +
         plural(l3Domains_.size(), "L3 domain");
}

std::string formatCpuList(const CpuList& cpus) {
  std::string out;
  std::size_t i = 0;
  while (i < cpus.size()) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(cpus[i]);
    if (j > i) out += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace Atoll::numa
