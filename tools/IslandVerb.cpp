// atoll island: resource islands on this host. When atolld runs (--source
// auto finds its socket, or --source daemon), create, delete, resize, pin and
// unpin change its desired state through the API (validated whole there,
// applied by its islands subsystem, kept across restarts); without a daemon
// (or with --source local) they work directly on cgroupfs (the islands'
// cgroups under the managed root are the only record kept) and pin
// libvirt-managed VMs through libvirt. list, show and map read a running
// atolld (GET /v1/islands: desired and current islands, enforced or not)
// when it answers, else cgroupfs. On a
// host whose cgroup mount cannot hold islands (no cgroup v2, or no cpuset
// controller) list and map still show the topology with every CPU in the
// shared island, and say why nothing is enforced. `resize --nodes` through
// atolld waits (at most kMemoryMoveWait) until atolld reports the memory
// move of that change and prints the bytes moved and the time taken, as the
// direct path does; `show` prints the island's last memory move.
//   create NAME (--cpus LIST | --count N) [--nodes LIST] [--exclusive root|isolated]
//          [--select SELECTOR ...] [limits]
//   delete NAME | resize NAME (--grow N | --shrink N | --cpus LIST | --nodes LIST)
//   pin NAME (PID | --vm DOMAIN) | unpin (PID | --vm DOMAIN) | list | show NAME
//   map [--svg FILE]
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "numa/CpuSet.h"
#include "numa/DomainPinning.h"
#include "numa/IslandAllocator.h"
#include "numa/IslandEnforcer.h"
#include "numa/IslandLimitsJson.h"
#include "numa/IslandMap.h"
#include "numa/IslandSelector.h"
#include "numa/LibvirtPinner.h"
#include "numa/MemoryMove.h"
#include "tools/DaemonClient.h"
#include "tools/NumberOptions.h"
#include "tools/Verbs.h"
#include "util/Fs.h"

namespace Atoll::cli {

namespace {

using namespace Atoll::numa;

// How long `resize --nodes` through atolld waits for its memory move, and
// how often it asks.
constexpr auto kMemoryMoveWait = std::chrono::seconds(30);
constexpr auto kMemoryMovePoll = std::chrono::milliseconds(200);

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
  std::string libvirtUri = std::string(kDefaultLibvirtUri);
  std::string vm;
  std::vector<std::string> selectors;
  std::optional<unsigned> cpuWeight;
  std::optional<std::string> cpuMax;
  std::optional<std::uint64_t> memoryMin, memoryLow, memoryHigh, memoryMax;
  std::optional<unsigned> ioWeight;
  std::string source = "auto";
  DaemonConnection connection;
};

// Islands as list, show and map present them, from cgroupfs or from atolld.
struct IslandReport {
  std::string source;  // "local" or "atolld"
  std::vector<IslandStatus> islands;
  bool enforced = true;
  std::string note;  // why the islands are not (all) enforced; empty when they are
  std::map<std::string, MemoryMove> memoryMoves;  // atolld's last one per island
};

// Why islands cannot be enforced on this mount, or nullopt when they can:
// the cpuset controller of a cgroup v2 hierarchy is what holds them.
std::optional<std::string> whyIslandsCannotBeEnforced(const std::string& mount) {
  const std::string path = mount + "/cgroup.controllers";
  auto controllers = readFile(path);
  if (!controllers)
    return mount +
           " is not a cgroup v2 mount (no cgroup.controllers), so islands cannot be "
           "enforced here; every CPU is in the shared island";
  const std::string padded = " " + std::string(trim(*controllers)) + " ";
  if (padded.find(" cpuset ") == std::string::npos)
    return "the cgroup v2 mount " + mount + " has no cpuset controller (" + path + ": '" +
           std::string(trim(*controllers)) +
           "'), so islands cannot be enforced here; every CPU is in the shared island";
  return std::nullopt;
}

// One island of GET /v1/islands ("desired" or "current" entry).
Result<IslandStatus> statusFromDaemon(const nlohmann::json& entry) {
  if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
      !entry.contains("cpus") || !entry["cpus"].is_string())
    return Error::invalid("read atolld islands", "/v1/islands", entry.dump(),
                          "an island without a name or CPU list");
  IslandStatus status;
  status.island.name = entry["name"].get<std::string>();
  auto cpus = parseCpuList(entry["cpus"].get<std::string>(), "cpus");
  if (!cpus) return cpus.error();
  status.island.cpus = *cpus;
  if (entry.contains("mems") && entry["mems"].is_string()) {
    auto mems = parseCpuList(entry["mems"].get<std::string>(), "mems");
    if (!mems) return mems.error();
    status.island.memNodes = *mems;
  }
  if (entry.contains("exclusivity") && entry["exclusivity"].is_string()) {
    if (auto exclusivity = parseExclusivity(entry["exclusivity"].get<std::string>()))
      status.island.exclusivity = *exclusivity;
  }
  if (entry.contains("effective_cpus") && entry["effective_cpus"].is_string())
    if (auto cpus = parseCpuList(entry["effective_cpus"].get<std::string>(), "effective_cpus"))
      status.effectiveCpus = *cpus;
  if (entry.contains("effective_mems") && entry["effective_mems"].is_string())
    if (auto mems = parseCpuList(entry["effective_mems"].get<std::string>(), "effective_mems"))
      status.effectiveMems = *mems;
  if (entry.contains("members") && entry["members"].is_array())
    for (const auto& pid : entry["members"])
      if (pid.is_number_integer()) status.members.push_back(pid.get<pid_t>());
  if (entry.contains("partition_problem") && entry["partition_problem"].is_string())
    status.partitionProblem = entry["partition_problem"].get<std::string>();
  return status;
}

// The daemon's view: the islands it enforces, else (degraded) the ones it
// wants, with its reason.
Result<IslandReport> reportFromDaemon(const nlohmann::json& body) {
  if (!body.is_object())
    return Error::invalid("read atolld islands", "/v1/islands", body.dump(), "not a JSON object");
  IslandReport report;
  report.source = "atolld";
  report.enforced = body.value("enforced", false);
  const char* key = report.enforced ? "current" : "desired";
  for (const auto& entry : body.value(key, nlohmann::json::array())) {
    auto status = statusFromDaemon(entry);
    if (!status) return status.error();
    if (entry.contains("last_memory_move")) {
      auto move = parseMemoryMoveJson(entry["last_memory_move"],
                                      "/v1/islands island " + status->island.name);
      if (!move) return move.error();
      report.memoryMoves[status->island.name] = std::move(*move);
    }
    report.islands.push_back(std::move(*status));
  }
  if (!report.enforced) {
    report.note = "atolld does not enforce islands";
    if (body.contains("degraded") && body["degraded"].is_string())
      report.note += ": " + body["degraded"].get<std::string>();
    if (!report.islands.empty()) report.note += "; the islands shown are desired, not applied";
  }
  return report;
}

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

nlohmann::json toJson(const DomainPinning& pinning) {
  nlohmann::json vcpus = nlohmann::json::array();
  for (const auto& cpus : pinning.vcpus) vcpus.push_back(formatCpuList(cpus));
  nlohmann::json iothreads = nlohmann::json::object();
  for (const auto& iothread : pinning.iothreads)
    iothreads[std::to_string(iothread.id)] = formatCpuList(iothread.cpus);
  return {{"vcpus", vcpus},
          {"emulator", formatCpuList(pinning.emulator)},
          {"iothreads", iothreads},
          {"memory_nodes", formatCpuList(pinning.memoryNodes)}};
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

std::string describe(const MemoryMove& move) {
  std::string line = "last memory move: nodes " + formatCpuList(move.fromNodes) + " -> " +
                     formatCpuList(move.toNodes) + ", ";
  line += move.error.empty() ? describePageMove(move.bytesMoved, move.milliseconds)
                             : "failed: " + move.error;
  return line + " (atolld revision " + std::to_string(move.revision) + ")";
}

class IslandCommand {
 public:
  explicit IslandCommand(const IslandArgs& args) : args_(args) {
    topology_ = need(
        args.topologyXml.empty() ? Topology::fromHost() : Topology::fromXmlFile(args.topologyXml),
        kExitFailure);
  }

  std::unique_ptr<LibvirtPinner> libvirt() const {
    return need(LibvirtPinner::connect(args_.libvirtUri), kExitUnavailable);
  }

  IslandEnforcer enforcer() const {
    return need(IslandEnforcer::open(topology_, args_.cgroupMount, args_.managedRoot),
                kExitFailure);
  }

  std::vector<IslandStatus> status() const { return need(enforcer().status(), kExitFailure); }

  // list, show and map: atolld's view when --source allows and it answers,
  // else cgroupfs, else (no islands possible here) the topology alone.
  IslandReport report() const {
    if (args_.source != "local") {
      DaemonClient client(args_.connection);
      auto reply = client.get("/v1/islands");
      const bool fallBack = args_.source == "auto" && (!reply || reply->status == 503);
      if (fallBack) {
        std::cerr << "atoll island: "
                  << (!reply ? describeFailure(reply.error()).message
                             : describeErrorReply(*reply).message)
                  << "; reading cgroupfs instead\n";
      } else {
        DaemonReply answer = expectSuccess(std::move(reply), args_.json);
        return need(reportFromDaemon(answer.body), kExitFailure);
      }
    }
    IslandReport report;
    report.source = "local";
    if (auto why = whyIslandsCannotBeEnforced(args_.cgroupMount)) {
      report.enforced = false;
      report.note = *why;
      return report;
    }
    report.islands = status();
    return report;
  }

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

  // The daemon to send a change to: with --source daemon always, with auto
  // when its socket answers and it runs the islands subsystem.
  std::optional<DaemonClient> daemonForChanges() const {
    if (args_.source == "local") return std::nullopt;
    DaemonClient client(args_.connection);
    if (args_.source == "auto") {
      auto probe = client.get("/v1/islands");
      if (!probe || probe->status == 503) return std::nullopt;
    }
    return client;
  }

  // Sends one change; refusals (4xx) are bad input: exit code 2.
  nlohmann::json sendChange(Result<DaemonReply> sent) const {
    if (!sent) cli::fail(describeFailure(sent.error()), args_.json);
    if (sent->status >= 400 && sent->status < 500 && sent->status != 403) {
      VerbFailure failure = describeErrorReply(*sent);
      failure.exitCode = kExitUsage;
      cli::fail(failure, args_.json);
    }
    return expectSuccess(std::move(sent), args_.json).body;
  }

  // Only the limits given on the command line; the daemon merges them.
  nlohmann::json limitsBody() const { return limitsJson(limits(IslandLimits{})); }

  void printDesired(const nlohmann::json& reply) const {
    if (args_.json) {
      std::cout << reply.dump(2) << "\n";
      return;
    }
    const nlohmann::json island = reply.value("island", nlohmann::json::object());
    std::cout << "island " << island.value("name", args_.name) << ": desired CPUs "
              << island.value("cpus", "?") << ", memory nodes "
              << island.value("mems", "(those of its CPUs)") << " (atolld revision "
              << reply.value("revision", 0) << "; applied at its next tick)\n";
  }

  void createThroughDaemon(DaemonClient& client) const {
    nlohmann::json body = {{"name", args_.name}};
    if (!args_.cpus.empty())
      body["cpus"] = args_.cpus;
    else
      body["count"] = args_.count;
    if (!args_.nodes.empty()) body["mems"] = args_.nodes;
    if (!args_.exclusive.empty()) body["exclusivity"] = args_.exclusive;
    if (nlohmann::json limits = limitsBody(); !limits.empty()) body["limits"] = limits;
    if (!args_.selectors.empty()) body["selectors"] = args_.selectors;
    printDesired(sendChange(client.post("/v1/islands", body)));
  }

  Result<IslandReport> daemonReport(DaemonClient& client) const {
    auto reply = client.get("/v1/islands");
    if (!reply) return reply.error();
    if (reply->status != 200)
      return Error::invalid("read atolld islands", "/v1/islands", reply->body.dump(),
                            describeErrorReply(*reply).message);
    return reportFromDaemon(reply->body);
  }

  // Why no memory move will follow a change of the island's nodes to
  // `nodes` (not enforced, not applied yet, already there), or empty.
  std::string whyNoMemoryMove(const IslandReport& report, const CpuList& nodes) const {
    if (!report.enforced) return report.note + "; no pages move";
    for (const auto& status : report.islands)
      if (status.island.name == args_.name)
        return status.island.memNodes == nodes
                   ? "memory of island " + args_.name + " is already on nodes " +
                         formatCpuList(nodes) + "; nothing to move"
                   : std::string();
    return "island " + args_.name + " is not applied yet; its members' memory starts on nodes " +
           formatCpuList(nodes);
  }

  // Polls atolld until it reports the memory move of the change stored at
  // `revision` (or a later one), for at most kMemoryMoveWait.
  MemoryMove awaitMemoryMove(DaemonClient& client, std::uint64_t revision) const {
    const auto until = std::chrono::steady_clock::now() + kMemoryMoveWait;
    std::string lastProblem;
    while (std::chrono::steady_clock::now() < until) {
      if (auto report = daemonReport(client)) {
        auto move = report->memoryMoves.find(args_.name);
        if (move != report->memoryMoves.end() && move->second.revision >= revision)
          return move->second;
      } else {
        lastProblem = report.error().message();
      }
      std::this_thread::sleep_for(kMemoryMovePoll);
    }
    cli::fail({kExitFailure,
               "atolld stored the change of island " + args_.name + " (revision " +
                   std::to_string(revision) + ") but reported no memory move for it within " +
                   std::to_string(kMemoryMoveWait.count()) + " s" +
                   (lastProblem.empty() ? std::string() : " (last answer: " + lastProblem + ")") +
                   "; see `atoll island show " + args_.name + "`"},
              args_.json);
  }

  void resizeThroughDaemon(DaemonClient& client) const {
    nlohmann::json body = nlohmann::json::object();
    if (!args_.cpus.empty()) body["cpus"] = args_.cpus;
    if (args_.grow > 0) body["grow"] = args_.grow;
    if (args_.shrink > 0) body["shrink"] = args_.shrink;
    if (!args_.nodes.empty()) body["mems"] = args_.nodes;
    if (nlohmann::json limits = limitsBody(); !limits.empty()) body["limits"] = limits;
    std::string noMove;
    if (!args_.nodes.empty()) {
      const CpuList nodes = parse(args_.nodes, "--nodes");
      auto before = daemonReport(client);
      if (!before)
        cli::fail(before.error().errnum == 0 ? VerbFailure{kExitFailure, before.error().message()}
                                             : describeFailure(before.error()),
                  args_.json);
      noMove = whyNoMemoryMove(*before, nodes);
    }
    nlohmann::json reply = sendChange(client.put("/v1/islands/" + urlEncodeKey(args_.name), body));
    if (args_.nodes.empty() || !noMove.empty()) {
      if (!noMove.empty()) std::cerr << "atoll island: " << noMove << "\n";
      return printDesired(reply);
    }
    const MemoryMove move = awaitMemoryMove(client, reply.value("revision", std::uint64_t{0}));
    if (!move.error.empty())
      cli::fail({kExitFailure, "atolld could not move the memory of island " + args_.name +
                                   " to nodes " + formatCpuList(move.toNodes) + ": " + move.error},
                args_.json);
    if (args_.json) {
      reply["bytes_moved"] = move.bytesMoved;
      reply["milliseconds"] = move.milliseconds;
      reply["memory_move"] = memoryMoveJson(move);
      std::cout << reply.dump(2) << "\n";
      return;
    }
    printDesired(reply);
    std::cout << describePageMove(move.bytesMoved, move.milliseconds) << "\n";
  }

  // A process is "pid:N", a VM its domain name.
  std::string workloadKey() const {
    return args_.vm.empty() ? "pid:" + std::to_string(args_.pid) : args_.vm;
  }

  void pinThroughDaemon(DaemonClient& client, const std::string& island) const {
    nlohmann::json reply = sendChange(client.put("/v1/pins/" + urlEncodeKey(workloadKey()),
                                                 {{"island", island}, {"source", "operator"}}));
    if (args_.json) {
      std::cout << reply.dump(2) << "\n";
      return;
    }
    std::cout << workloadKey() << " pinned to " << island << " (atolld revision "
              << reply.value("revision", 0) << "; applied at its next tick)\n";
  }

  void create() const {
    if (auto client = daemonForChanges()) return createThroughDaemon(*client);
    need(validateIslandName(args_.name), kExitUsage);
    // Selectors are parsed and matched (read-only) before anything changes.
    std::vector<IslandSelector> selectors;
    for (const auto& text : args_.selectors)
      selectors.push_back(need(parseIslandSelector(text), kExitUsage));
    std::unique_ptr<LibvirtPinner> pinner;
    if (std::any_of(selectors.begin(), selectors.end(),
                    [](const IslandSelector& selector) { return selector.needsLibvirt(); }))
      pinner = libvirt();
    const SelectedMembers members =
        need(resolveSelectors(selectors, args_.cgroupMount, args_.managedRoot, pinner.get()),
             kExitUsage);
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
    auto enforcerNow = enforcer();
    check(enforcerNow.apply(desired));
    adopt(enforcerNow, island, members);
    show();
  }

  // Moves the selected processes into the new island and pins the selected
  // VMs to it; on a failure the moves are undone and the island removed.
  void adopt(IslandEnforcer& enforcerNow, const Island& island,
             const SelectedMembers& members) const {
    const std::string path = enforcerNow.managedPath() + "/" + island.name;
    auto undo = [&](Error error, bool processesMoved) {
      if (processesMoved) {
        if (auto back = moveProcessesBack(args_.cgroupMount, members.processes); !back)
          error.detail += "; " + back.error().message();
      }
      if (auto removed = enforcerNow.remove(island.name); !removed)
        error.detail += "; removing the new island failed: " + removed.error().message();
      else
        error.detail += "; the new island was removed";
      fail(error, codeFor(error));
    };
    if (auto moved = moveSelectedProcesses(args_.cgroupMount, path, members.processes); !moved)
      undo(moved.error(), false);
    if (members.domains.empty()) return;
    auto pinner = libvirt();
    if (auto pinned = pinDomainsToIsland(*pinner, island, members.domains); !pinned)
      undo(pinned.error(), true);
  }

  void resize() const {
    if (auto client = daemonForChanges()) return resizeThroughDaemon(*client);
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
      std::cout << describePageMove(moved->bytesMoved, ms) << "\n";
    }
    show();
  }

  void show() const {
    const IslandReport report = this->report();
    if (!report.note.empty()) std::cerr << "atoll island: " << report.note << "\n";
    const IslandStatus& found = find(report.islands);
    auto move = report.memoryMoves.find(found.island.name);
    if (args_.json) {
      nlohmann::json out = toJson(found);
      if (move != report.memoryMoves.end()) out["last_memory_move"] = memoryMoveJson(move->second);
      std::cout << out.dump(2) << "\n";
      return;
    }
    std::cout << describe(found) << "\n";
    if (move != report.memoryMoves.end()) std::cout << describe(move->second) << "\n";
  }

  void list() const {
    const IslandReport report = this->report();
    const auto& all = report.islands;
    if (args_.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& status : all) out.push_back(toJson(status));
      std::cout << out.dump(2) << "\n";
      if (!report.note.empty()) std::cerr << "atoll island: " << report.note << "\n";
      return;
    }
    std::cout << "source: " << (report.source == "atolld" ? "atolld" : "cgroupfs") << "\n";
    for (const auto& status : all) std::cout << describe(status) << "\n";
    std::vector<Island> plain;
    for (const auto& status : all) plain.push_back(status.island);
    std::cout << kSharedIslandName << ": CPUs " << formatCpuList(sharedCpus(topology_, plain))
              << "\n";
    if (!report.note.empty()) std::cout << "note: " << report.note << "\n";
  }

  void map() const {
    const IslandReport report = this->report();
    std::vector<IslandView> views;
    std::vector<Island> plain;
    for (const auto& status : report.islands) {
      plain.push_back(status.island);
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
      nlohmann::json out = {{"source", report.source},
                            {"topology", topology_.summary()},
                            {"islands", islands},
                            {"shared_cpus", formatCpuList(sharedCpus(topology_, plain))},
                            {"enforced", report.enforced}};
      out["note"] = report.note.empty() ? nlohmann::json(nullptr) : nlohmann::json(report.note);
      std::cout << out.dump(2) << "\n";
    } else if (args_.svg.empty()) {
      std::cout << renderIslandMapText(topology_, views);
      if (!report.note.empty()) std::cout << "note: " << report.note << "\n";
    } else if (!report.note.empty()) {
      std::cerr << "atoll island: " << report.note << "\n";
    }
  }

  void remove() const {
    if (auto client = daemonForChanges()) {
      nlohmann::json reply = sendChange(client->remove("/v1/islands/" + urlEncodeKey(args_.name)));
      if (args_.json)
        std::cout << reply.dump() << "\n";
      else
        std::cout << "island " << args_.name << " deleted (atolld revision "
                  << reply.value("revision", 0) << "; applied at its next tick)\n";
      return;
    }
    auto enforcerNow = enforcer();
    check(enforcerNow.remove(args_.name));
    if (args_.json) std::cout << nlohmann::json{{"deleted", args_.name}}.dump() << "\n";
  }

  void pinVm(const Island& island) const {
    auto pinner = libvirt();
    auto change = pinDomainToIsland(*pinner, island, args_.vm);
    if (!change) fail(change.error(), codeFor(change.error()));
    report(*change, island.name);
  }

  void report(const DomainPinChange& change, const std::string& island) const {
    if (args_.json) {
      std::cout << nlohmann::json{{"vm", change.domain},
                                  {"island", island},
                                  {"before", toJson(change.before)},
                                  {"after", toJson(change.after)}}
                       .dump(2)
                << "\n";
      return;
    }
    std::cout << "VM " << change.domain << " on " << island << ": vCPUs, emulator and "
              << change.after.iothreads.size() << " I/O thread(s) on CPUs "
              << formatCpuList(change.after.emulator) << ", memory on nodes "
              << formatCpuList(change.after.memoryNodes) << "\n";
  }

  void pin() const {
    if (auto client = daemonForChanges()) return pinThroughDaemon(*client, args_.name);
    if (!args_.vm.empty()) {
      auto all = status();
      pinVm(find(all).island);
      return;
    }
    auto enforcerNow = enforcer();
    check(enforcerNow.pin(args_.name, args_.pid));
    if (args_.json)
      std::cout << nlohmann::json{{"pinned", args_.pid}, {"island", args_.name}}.dump() << "\n";
  }

  void unpin() const {
    if (auto client = daemonForChanges())
      return pinThroughDaemon(*client, std::string(kSharedIslandName));
    if (!args_.vm.empty()) {
      std::vector<Island> current;
      for (const auto& status : this->status()) current.push_back(status.island);
      Island shared;
      shared.name = std::string(kSharedIslandName);
      shared.cpus = sharedCpus(topology_, current);
      for (const auto& node : topology_.nodes()) shared.memNodes.push_back(node.osIndex);
      pinVm(shared);
      return;
    }
    auto enforcerNow = enforcer();
    check(enforcerNow.unpin(args_.pid));
    if (args_.json) std::cout << nlohmann::json{{"unpinned", args_.pid}}.dump() << "\n";
  }

 private:
  const IslandArgs& args_;
  Topology topology_;
};

// Counts, PIDs, weights and bytes are plain decimal (kDecimal): "-1" would
// otherwise be memory.max "unlimited" by accident.
void addLimitOptions(CLI::App* command, IslandArgs& args) {
  command->add_option("--cpu-weight", args.cpuWeight, "cpu.weight (1-10000)")->check(kDecimal);
  command->add_option("--cpu-max", args.cpuMax, "cpu.max: 'max' or 'QUOTA PERIOD' (us)");
  command->add_option("--memory-min", args.memoryMin, "memory.min in bytes")->check(kDecimal);
  command->add_option("--memory-low", args.memoryLow, "memory.low in bytes")->check(kDecimal);
  command->add_option("--memory-high", args.memoryHigh, "memory.high in bytes")->check(kDecimal);
  command->add_option("--memory-max", args.memoryMax, "memory.max in bytes")->check(kDecimal);
  command->add_option("--io-weight", args.ioWeight, "io.weight (1-10000)")->check(kDecimal);
}

}  // namespace

void addIslandVerb(CLI::App& app) {
  auto args = std::make_shared<IslandArgs>();
  CLI::App* verb = app.add_subcommand(
      "island", "Resource islands: CPU/memory sets on cgroup v2 (through atolld when it runs)");
  verb->require_subcommand(1);
  verb->add_option("--cgroup-root", args->cgroupMount, "The cgroup2 mount")->capture_default_str();
  verb->add_option("--managed-root", args->managedRoot, "Islands' parent cgroup, below the mount")
      ->capture_default_str();
  verb->add_option("--topology-xml", args->topologyXml, "Use a recorded hwloc XML topology");
  verb->add_flag("--json", args->json, "Machine-readable output");
  verb->add_option("--libvirt-uri", args->libvirtUri,
                   "libvirt connection for --vm and vm selectors")
      ->capture_default_str();
  verb->add_option("--source", args->source,
                   "auto (atolld when it answers, else cgroupfs), daemon or local; changes "
                   "through atolld become its desired state")
      ->check(CLI::IsMember({"auto", "daemon", "local"}))
      ->capture_default_str();
  addDaemonOptions(*verb, args->connection);
  auto run = [args](void (IslandCommand::*action)() const) {
    return [args, action] { (IslandCommand(*args).*action)(); };
  };

  CLI::App* create = verb->add_subcommand("create", "Create an island");
  create->add_option("name", args->name, "Island name")->required();
  auto* cpus = create->add_option("--cpus", args->cpus, "Explicit CPU list (e.g. 2-5)");
  create->add_option("--count", args->count, "CPUs to place by topology (whole cores)")
      ->check(kDecimal)
      ->excludes(cpus);
  create->add_option("--nodes", args->nodes, "Memory nodes (default: the CPUs' nodes)");
  create->add_option("--exclusive", args->exclusive, "Exclusive partition: root or isolated");
  create->add_option("--select", args->selectors,
                     "Members to adopt: cgroup path glob ('machine.slice/*' or 'cgroup:GLOB'), "
                     "'vm:GLOB' (libvirt domain names) or 'vm-metadata:URI[=TEXT]'; "
                     "one that matches nothing is an error");
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
  auto* grow = resize->add_option("--grow", args->grow, "Add N CPUs (whole cores, nearest)")
                   ->check(kDecimal);
  auto* shrink = resize->add_option("--shrink", args->shrink, "Remove N CPUs (whole cores)")
                     ->check(kDecimal)
                     ->excludes(grow);
  resize->add_option("--cpus", args->cpus, "Explicit new CPU list")
      ->excludes(grow)
      ->excludes(shrink);
  resize->add_option("--nodes", args->nodes, "New memory nodes; members' pages move there");
  addLimitOptions(resize, *args);
  resize->callback(run(&IslandCommand::resize));

  CLI::App* pin = verb->add_subcommand(
      "pin", "Move a process into an island, or pin a libvirt VM to it (--vm)");
  pin->add_option("name", args->name, "Island name")->required();
  auto* pinPid = pin->add_option("pid", args->pid, "Process id")->check(kDecimal);
  pin->add_option("--vm", args->vm, "libvirt domain: vCPUs, emulator, I/O threads and memory")
      ->excludes(pinPid);
  pin->callback([args, run] {
    if (args->vm.empty() && args->pid == 0)
      fail(Error::invalid("pin", args->name, {}, "give a PID or --vm DOMAIN"), kExitUsage);
    run (&IslandCommand::pin)();
  });

  CLI::App* unpin = verb->add_subcommand(
      "unpin", "Move a process, or a libvirt VM (--vm), back to the shared island");
  auto* unpinPid = unpin->add_option("pid", args->pid, "Process id")->check(kDecimal);
  unpin->add_option("--vm", args->vm, "libvirt domain")->excludes(unpinPid);
  unpin->callback([args, run] {
    if (args->vm.empty() && args->pid == 0)
      fail(Error::invalid("unpin", "", {}, "give a PID or --vm DOMAIN"), kExitUsage);
    run (&IslandCommand::unpin)();
  });

  verb->add_subcommand("list", "List islands")->callback(run(&IslandCommand::list));
  CLI::App* show = verb->add_subcommand("show", "Show one island");
  show->add_option("name", args->name, "Island name")->required();
  show->callback(run(&IslandCommand::show));

  CLI::App* map =
      verb->add_subcommand("map", "The topology with islands (text, --svg FILE or --json)");
  map->add_option("--svg", args->svg, "Write an SVG picture to FILE");
  map->callback(run(&IslandCommand::map));
}

}  // namespace Atoll::cli
