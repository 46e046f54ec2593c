#pragma once
// The host's CPU and memory topology as hwloc sees it, copied into plain
// values: NUMA nodes, packages, cores, PUs (logical CPUs, by Linux CPU
// number) and L3 cache domains. Loaded from the live host or from an hwloc
// XML export, so placement logic can be tested on recorded machines.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll::numa {

// CPU numbers as Linux numbers them (hwloc PU OS indexes), ascending.
using CpuList = std::vector<unsigned>;

struct NumaNode {
  unsigned osIndex = 0;
  CpuList cpus;
  std::uint64_t localMemoryBytes = 0;
};

struct Package {
  unsigned osIndex = 0;
  CpuList cpus;
};

struct Core {
  CpuList cpus;  // its hardware threads
};

struct CacheDomain {
  std::uint64_t sizeBytes = 0;
  CpuList cpus;  // CPUs sharing this cache
};

class Topology {
 public:
  // Discovers the running machine, including CPUs this process may not use.
  static Result<Topology> fromHost();
  // Loads an export written by `lstopo --of xml` or hwloc_topology_export_xml.
  static Result<Topology> fromXmlFile(const std::string& path);
  static Result<Topology> fromXml(std::string_view xml);

  const std::vector<NumaNode>& nodes() const { return nodes_; }
  const std::vector<Package>& packages() const { return packages_; }
  const std::vector<Core>& cores() const { return cores_; }
  const std::vector<CacheDomain>& l3Domains() const { return l3Domains_; }
  const CpuList& cpus() const { return cpus_; }
  // Relative memory latency between two NUMA nodes (by OS index), as the
  // firmware's SLIT reports it: 10 local. Without a recorded matrix, 10 for
  // the node itself and 20 for any other (the ACPI default for "remote").
  unsigned distance(unsigned fromNode, unsigned toNode) const;
  // Where the topology came from: "host" or the XML file's path.
  const std::string& source() const { return source_; }

  // The NUMA node whose CPU set holds cpu.
  std::optional<unsigned> nodeOfCpu(unsigned cpu) const;
  // "2 NUMA nodes, 2 packages, 16 cores, 32 PUs, 4 L3 domains"
  std::string summary() const;

 private:
  friend class TopologyLoader;
  std::string source_;
  std::vector<NumaNode> nodes_;
  std::vector<Package> packages_;
  std::vector<Core> cores_;
  std::vector<CacheDomain> l3Domains_;
  CpuList cpus_;
  // distances_[i * nodes_.size() + j] between nodes_[i] and nodes_[j]; empty
  // when hwloc found no matrix.
  std::vector<unsigned> distances_;
};

// "0-3,8,10-11", the kernel's cpulist format (cpuset.cpus, sysfs).
std::string formatCpuList(const CpuList& cpus);

}  // namespace Atoll::numa
