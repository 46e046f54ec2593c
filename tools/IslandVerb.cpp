// atoll island: resource islands on this host, worked directly on cgroupfs
// (the islands' cgroups under the managed root are the only record kept).
//   create NAME (--cpus LIST | --count N) [--nodes LIST] [--exclusive root|isolated] [limits]
//   delete NAME | resize NAME (--grow N | --shrink N | --cpus LIST | --nodes LIST)
//   pin NAME PID | unpin PID | list | show NAME | map [--svg FILE]
#include <fstream>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "numa/CpuSet.h"
#include "numa/IslandAllocator.h"
#include "numa/IslandEnforcer.h"
#include "numa/IslandMap.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

using namespace Atoll::numa;

struct IslandArgs {
  std::string cgroupMount = std::string(kDefaultCgroupMount);
  std::string managedRoot = std::string(kDefaultManagedRoot);
  std::string topologyXml;
  bool json = false;
  std::string name;
  std::string cpus;
  unsigned count = 0;
  std::string nodes;
  std::string exclusive;
  unsigned grow = 0;
  unsigned shrink = 0;
  int pid = 0;
  std::string svg;
  std::optional<unsigned> cpuWeight;
  std::optional<std::string> cpuMax;
  std::optional<std::uint64_t> memoryMin, memoryLow, memoryHigh, memoryMax;
  std::optional<unsigned> ioWeight;
};

[[noreturn]] void fail(const Error& error, ExitCode code) {
  std::cerr << "atoll island: " << error.message() << "\n";
  throw CLI::RuntimeError(code);
}

template <typename T>
T need(Result<T> result, ExitCode code) {
  if (!result) fail(result.error(), code);
  return std::move(result.value());
}

void need(Result<void> result, ExitCode code) {
  if (!result) fail(result.error(), code);
}

ExitCode codeFor(const Error& error) {
  if (error.errnum == EACCES || error.errnum == EPERM) return kExitPermission;
  return error.errnum == 0 ? kExitUsage : kExitFailure;
}

void check(Result<void> result) {
  if (!result) fail(result.error(), codeFor(result.error()));
}

nlohmann::json toJson(const IslandStatus& status) {
  const Island& island = status.island;
  nlohmann::json out = {{"name", island.name},
                        {"cpus", formatCpuList(island.cpus)},
                        {"memory_nodes", formatCpuList(island.memNodes)},
                        {"exclusivity", exclusivityName(island.exclusivity)},
                        {"effective_cpus", formatCpuList(status.effectiveCpus)},
                        {"effective_memory_nodes", formatCpuList(status.effectiveMems)},
                        {"members", status.members}};
  if (!status.partitionProblem.empty()) out["partition_problem"] = status.partitionProblem;
  if (island.limits.cpuWeight) out["cpu_weight"] = *island.limits.cpuWeight;
  if (island.limits.cpuMax) out["cpu_max"] = *island.limits.cpuMax;
  if (island.limits.ioWeight) out["io_weight"] = *island.limits.ioWeight;
  return out;
}

std::string describe(const IslandStatus& status) {
  const Island& island = status.island;
  std::string line = island.name + ": CPUs " + formatCpuList(island.cpus) + ", memory nodes " +
                     formatCpuList(island.memNodes) + ", " +
                     std::string(exclusivityName(island.exclusivity)) + ", " +
                     std::to_string(status.members.size()) + " member(s)";
  if (!status.partitionProblem.empty()) line += ", partition invalid: " + status.partitionProblem;
  return line;
}

class IslandCommand {
 public:
  explicit IslandCommand(const IslandArgs& args) : args_(args) {
    topology_ = need(
        args.topologyXml.empty() ? Topology::fromHost() : Topology::fromXmlFile(args.topologyXml),
        kExitFailure);
  }

  IslandEnforcer enforcer() const {
    return need(IslandEnforcer::open(topology_, args_.cgroupMount, args_.managedRoot),
                kExitFailure);
  }

  std::vector<IslandStatus> status() const { return need(enforcer().status(), kExitFailure); }

  const IslandStatus& find(const std::vector<IslandStatus>& all) const {
    for (const auto& status : all)
      if (status.island.name == args_.name) return status;
    fail(Error::invalid("island", args_.name, args_.name, "no such island"), kExitUsage);
  }

  CpuList parse(const std::string& text, const char* option) const {
    return need(parseCpuList(text, option), kExitUsage);
  }

  IslandLimits limits(IslandLimits base) const {
    if (args_.cpuWeight) base.cpuWeight = args_.cpuWeight;
    if (args_.cpuMax) base.cpuMax = args_.cpuMax;
    if (args_.memoryMin) base.memoryMin = args_.memoryMin;
    if (args_.memoryLow) base.memoryLow = args_.memoryLow;
    if (args_.memoryHigh) base.memoryHigh = args_.memoryHigh;
    if (args_.memoryMax) base.memoryMax = args_.memoryMax;
    if (args_.ioWeight) base.ioWeight = args_.ioWeight;
    return base;
  }

  void create() const {
    need(validateIslandName(args_.name), kExitUsage);
    auto all = status();
    std::vector<Island> desired;
    CpuList claimed;
    for (const auto& status : all) {
      if (status.island.name == args_.name)
        fail(Error::invalid("create island", args_.name, args_.name, "island exists"), kExitUsage);
      desired.push_back(status.island);
      claimed = unionOf(claimed, status.island.cpus);
    }
    Island island;
    island.name = args_.name;
    CpuList nodes = args_.nodes.empty() ? CpuList{} : parse(args_.nodes, "--nodes");
    if (!args_.cpus.empty()) {
      island.cpus = parse(args_.cpus, "--cpus");
    } else {
      IslandAllocator allocator(topology_, claimed);
      island.cpus = need(allocator.place(args_.name, args_.count, nodes), kExitUsage).cpus;
    }
    island.memNodes = nodes.empty() ? nodesOfCpus(topology_, island.cpus) : nodes;
    if (!args_.exclusive.empty()) {
      auto exclusivity = parseExclusivity(args_.exclusive);
      if (!exclusivity)
        fail(Error::invalid("--exclusive", args_.name, args_.exclusive,
                            "expected root, isolated or member"),
             kExitUsage);
      island.exclusivity = *exclusivity;
    }
    island.limits = limits({});
    desired.push_back(island);
    check(enforcer().apply(desired));
    show();
  }

  void resize() const {
    auto all = status();
    const IslandStatus& current = find(all);
    std::vector<Island> desired;
    CpuList claimedByOthers;
    for (const auto& status : all) {
      desired.push_back(status.island);
      if (status.island.name != args_.name)
        claimedByOthers = unionOf(claimedByOthers, status.island.cpus);
    }
    Island& island = *std::find_if(desired.begin(), desired.end(),
                                   [&](const Island& i) { return i.name == args_.name; });
    IslandAllocator allocator(topology_, unionOf(claimedByOthers, current.island.cpus));
    if (!args_.cpus.empty())
      island.cpus = parse(args_.cpus, "--cpus");
    else if (args_.grow > 0)
      island.cpus = need(allocator.grow(args_.name, island.cpus, args_.grow), kExitUsage).cpus;
    else if (args_.shrink > 0)
      island.cpus = need(allocator.shrink(args_.name, island.cpus, args_.shrink), kExitUsage).cpus;
    island.limits = limits(island.limits);
    check(enforcer().apply(desired));
    if (!args_.nodes.empty()) {
      auto enforcerNow = enforcer();
      auto moved = enforcerNow.moveMemory(args_.name, parse(args_.nodes, "--nodes"));
      if (!moved) fail(moved.error(), codeFor(moved.error()));
      const double ms = std::chrono::duration<double, std::milli>(moved->took).count();
      if (args_.json) {
        std::cout << nlohmann::json{{"bytes_moved", moved->bytesMoved}, {"milliseconds", ms}}.dump()
                  << "\n";
        return;
      }
      std::cout << "moved " << moved->bytesMoved << " bytes of members' memory in " << ms
                << " ms\n";
    }
    show();
  }

  void show() const {
    auto all = status();
    const IslandStatus& found = find(all);
    if (args_.json)
      std::cout << toJson(found).dump(2) << "\n";
    else
      std::cout << describe(found) << "\n";
  }

  void list() const {
    auto all = status();
    if (args_.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& status : all) out.push_back(toJson(status));
      std::cout << out.dump(2) << "\n";
      return;
    }
    for (const auto& status : all) std::cout << describe(status) << "\n";
    std::vector<Island> plain;
    for (const auto& status : all) plain.push_back(status.island);
    std::cout << kSharedIslandName << ": CPUs " << formatCpuList(sharedCpus(topology_, plain))
              << "\n";
  }

  void map() const {
    std::vector<IslandView> views;
    for (const auto& status : this->status()) {
      IslandView view{status.island, {}};
      for (pid_t pid : status.members) {
        auto comm = readFile("/proc/" + std::to_string(pid) + "/comm");
        view.members.push_back({pid, comm ? std::string(trim(*comm)) : std::string()});
      }
      views.push_back(std::move(view));
    }
    if (!args_.svg.empty()) {
      std::ofstream out(args_.svg, std::ios::binary | std::ios::trunc);
      out << renderIslandMapSvg(topology_, views);
      out.flush();
      if (!out)
        fail(Error::invalid("write", args_.svg, {}, "cannot write the SVG file"), kExitFailure);
    }
    if (args_.json) {
      nlohmann::json islands = nlohmann::json::array();
      for (const auto& view : views)
        islands.push_back({{"name", view.island.name}, {"cpus", formatCpuList(view.island.cpus)}});
      std::cout << nlohmann::json{{"topology", topology_.summary()}, {"islands", islands}}.dump(2)
                << "\n";
    } else if (args_.svg.empty()) {
      std::cout << renderIslandMapText(topology_, views);
    }
  }

  void remove() const {
    auto enforcerNow = enforcer();
    check(enforcerNow.remove(args_.name));
    if (args_.json) std::cout << nlohmann::json{{"deleted", args_.name}}.dump() << "\n";
  }

  void pin() const {
    auto enforcerNow = enforcer();
    check(enforcerNow.pin(args_.name, args_.pid));
    if (args_.json)
      std::cout << nlohmann::json{{"pinned", args_.pid}, {"island", args_.name}}.dump() << "\n";
  }

  void unpin() const {
    auto enforcerNow = enforcer();
    check(enforcerNow.unpin(args_.pid));
    if (args_.json) std::cout << nlohmann::json{{"unpinned", args_.pid}}.dump() << "\n";
  }

 private:
  const IslandArgs& args_;
  Topology topology_;
};

void addLimitOptions(CLI::App* command, IslandArgs& args) {
  command->add_option("--cpu-weight", args.cpuWeight, "cpu.weight (1-10000)");
  command->add_option("--cpu-max", args.cpuMax, "cpu.max: 'max' or 'QUOTA PERIOD' (us)");
  command->add_option("--memory-min", args.memoryMin, "memory.min in bytes");
  command->add_option("--memory-low", args.memoryLow, "memory.low in bytes");
  command->add_option("--memory-high", args.memoryHigh, "memory.high in bytes");
  command->add_option("--memory-max", args.memoryMax, "memory.max in bytes");
  command->add_option("--io-weight", args.ioWeight, "io.weight (1-10000)");
}

}  // namespace

void addIslandVerb(CLI::App& app) {
  auto args = std::make_shared<IslandArgs>();
  CLI::App* verb = app.add_subcommand(
      "island", "Resource islands: CPU/memory sets on cgroup v2 (worked on cgroupfs directly)");
  verb->require_subcommand(1);
  verb->add_option("--cgroup-root", args->cgroupMount, "The cgroup2 mount")->capture_default_str();
  verb->add_option("--managed-root", args->managedRoot, "Islands' parent cgroup, below the mount")
      ->capture_default_str();
  verb->add_option("--topology-xml", args->topologyXml, "Use a recorded hwloc XML topology");
  verb->add_flag("--json", args->json, "Machine-readable output");
  auto run = [args](void (IslandCommand::*action)() const) {
    return [args, action] { (IslandCommand(*args).*action)(); };
  };

  CLI::App* create = verb->add_subcommand("create", "Create an island");
  create->add_option("name", args->name, "Island name")->required();
  auto* cpus = create->add_option("--cpus", args->cpus, "Explicit CPU list (e.g. 2-5)");
  create->add_option("--count", args->count, "CPUs to place by topology (whole cores)")
      ->excludes(cpus);
  create->add_option("--nodes", args->nodes, "Memory nodes (default: the CPUs' nodes)");
  create->add_option("--exclusive", args->exclusive, "Exclusive partition: root or isolated");
  addLimitOptions(create, *args);
  create->callback([args, run] {
    if (args->cpus.empty() && args->count == 0)
      fail(Error::invalid("create island", args->name, {}, "give --cpus LIST or --count N"),
           kExitUsage);
    run (&IslandCommand::create)();
  });

  CLI::App* remove = verb->add_subcommand("delete", "Delete an island; members go to shared");
  remove->add_option("name", args->name, "Island name")->required();
  remove->callback(run(&IslandCommand::remove));

  CLI::App* resize = verb->add_subcommand("resize", "Grow, shrink or move an island");
  resize->add_option("name", args->name, "Island name")->required();
  auto* grow = resize->add_option("--grow", args->grow, "Add N CPUs (whole cores, nearest)");
  auto* shrink =
      resize->add_option("--shrink", args->shrink, "Remove N CPUs (whole cores)")->excludes(grow);
  resize->add_option("--cpus", args->cpus, "Explicit new CPU list")
      ->excludes(grow)
      ->excludes(shrink);
  resize->add_option("--nodes", args->nodes, "New memory nodes; members' pages move there");
  addLimitOptions(resize, *args);
  resize->callback(run(&IslandCommand::resize));

  CLI::App* pin = verb->add_subcommand("pin", "Move a process into an island");
  pin->add_option("name", args->name, "Island name")->required();
  pin->add_option("pid", args->pid, "Process id")->required();
  pin->callback(run(&IslandCommand::pin));

  CLI::App* unpin = verb->add_subcommand("unpin", "Move a process back to the shared island");
  unpin->add_option("pid", args->pid, "Process id")->required();
  unpin->callback(run(&IslandCommand::unpin));

  verb->add_subcommand("list", "List islands")->callback(run(&IslandCommand::list));
  CLI::App* show = verb->add_subcommand("show", "Show one island");
  show->add_option("name", args->name, "Island name")->required();
  show->callback(run(&IslandCommand::show));

  CLI::App* map = verb->add_subcommand("map", "The topology with islands (text or --svg FILE)");
  map->add_option("--svg", args->svg, "Write an SVG picture to FILE");
  map->callback(run(&IslandCommand::map));
}

}  // namespace Atoll::cli
