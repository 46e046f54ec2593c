// Exact byte counts of the cgroup_skb programs over loopback. What is counted
// is skb->len at cgroup_skb: IP header + transport header + payload.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "TestCgroup.h"
#include "bpf/loaders/NetTelemetry.h"

namespace Atoll::telemetry {
namespace {

constexpr int kDatagrams = 50;
constexpr size_t kDatagramPayload = 1000;
constexpr size_t kTcpPayload = 200000;
constexpr size_t kIpv4Header = 20;
constexpr size_t kUdpHeader = 8;

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

uint16_t portOf(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// Runs in the worker: exit status 0 when every datagram arrived.
int udpExchange() {
  int rx = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int tx = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in any = loopback(0);
  if (::bind(rx, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) return 1;
  sockaddr_in to = loopback(portOf(rx));
  std::vector<char> buf(kDatagramPayload, 'u');
  for (int i = 0; i < kDatagrams; ++i) {
    if (::sendto(tx, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) !=
        static_cast<ssize_t>(buf.size()))
      return 2;
    if (::recv(rx, buf.data(), buf.size(), 0) != static_cast<ssize_t>(buf.size())) return 3;
  }
  return 0;
}

int tcpExchange() {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in any = loopback(0);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) return 1;
  if (::listen(listener, 1) != 0) return 2;
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to = loopback(portOf(listener));
  if (::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) return 3;
  int server = ::accept(listener, nullptr, nullptr);
  if (server < 0) return 4;
  std::vector<char> buf(kTcpPayload, 't');
  size_t sent = 0, received = 0;
  while (received < kTcpPayload) {
    if (sent < kTcpPayload) {
      ssize_t n = ::send(client, buf.data() + sent, kTcpPayload - sent, MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    ssize_t n = ::recv(server, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n > 0) received += static_cast<size_t>(n);
    if (n == 0) return 5;
  }
  ::close(client);
  ::close(server);
  ::close(listener);
  return 0;
}

struct NetFixture {
  std::optional<testing::TestCgroup> cgroup;
  std::unique_ptr<NetTelemetry> net;
  std::string skip;
};

NetFixture startNet(const std::string& name) {
  NetFixture f;
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) {
    f.skip = access.skipReason;
    return f;
  }
  auto cgroup = testing::TestCgroup::create(access.mount, name);
  if (!cgroup) {
    ADD_FAILURE() << cgroup.error().message();
    return f;
  }
  f.cgroup.emplace(std::move(*cgroup));
  NetTelemetryOptions options;
  options.cgroupPath = f.cgroup->path();
  auto net = NetTelemetry::start(options);
  if (!net) {
    f.skip = "cgroup_skb programs unavailable: " + net.error().message();
    return f;
  }
  f.net = std::move(*net);
  return f;
}

NetCounters run(NetFixture& f, int (*exchange)()) {
  pid_t pid = f.cgroup->fork(exchange);
  EXPECT_GT(pid, 0);
  f.cgroup->start();
  int status = -1;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;
  auto all = f.net->read();
  EXPECT_TRUE(all) << all.error().message();
  if (!all) return {};
  auto it = all->find(f.cgroup->id());
  return it == all->end() ? NetCounters{} : it->second;
}

TEST(NetAccuracy, UdpBytesAreExactlyIpUdpHeadersPlusPayload) {
  NetFixture f = startNet("atoll-test-udp");
  if (!f.net) GTEST_SKIP() << f.skip;
  NetCounters c = run(f, udpExchange);
  const uint64_t perPacket = kIpv4Header + kUdpHeader + kDatagramPayload;
  EXPECT_EQ(c.txPackets, static_cast<uint64_t>(kDatagrams));
  EXPECT_EQ(c.rxPackets, static_cast<uint64_t>(kDatagrams));
  EXPECT_EQ(c.txBytes, kDatagrams * perPacket);
  EXPECT_EQ(c.rxBytes, kDatagrams * perPacket);
  EXPECT_EQ(c.txPayloadBytes, kDatagrams * kDatagramPayload);
  EXPECT_EQ(c.rxPayloadBytes, kDatagrams * kDatagramPayload);
  auto flows = f.net->readFlows();
  ASSERT_TRUE(flows);
  uint64_t toLoopback = 0;
  for (const NetFlow& flow : *flows)
    if (flow.cgroupId == f.cgroup->id() && flow.egress && peerAddressText(flow.peer) == "127.0.0.1")
      toLoopback += flow.bytes;
  EXPECT_EQ(toLoopback, kDatagrams * perPacket);
}

TEST(NetAccuracy, TcpPayloadIsExactAndHeadersArePerPacket) {
  NetFixture f = startNet("atoll-test-tcp");
  if (!f.net) GTEST_SKIP() << f.skip;
  NetCounters c = run(f, tcpExchange);
  EXPECT_EQ(c.txPayloadBytes, kTcpPayload);
  EXPECT_EQ(c.rxPayloadBytes, kTcpPayload);
  // Each packet carries a 20-byte IPv4 header and a 20-60 byte TCP header.
  ASSERT_GT(c.txPackets, 0u);
  EXPECT_GE(c.txBytes - c.txPayloadBytes, c.txPackets * 40);
  EXPECT_LE(c.txBytes - c.txPayloadBytes, c.txPackets * 80);
  EXPECT_GE(c.rxBytes - c.rxPayloadBytes, c.rxPackets * 40);
  EXPECT_LE(c.rxBytes - c.rxPayloadBytes, c.rxPackets * 80);
}

size_t flowsOf(const NetTelemetry& net, uint64_t cgroupId) {
  auto flows = net.readFlows();
  EXPECT_TRUE(flows) << flows.error().message();
  if (!flows) return 0;
  return static_cast<size_t>(std::count_if(flows->begin(), flows->end(), [&](const NetFlow& flow) {
    return flow.cgroupId == cgroupId;
  }));
}

// An ended cgroup's flows leave the flow map with its counters; otherwise
// they fill it and new peers are no longer counted.
TEST(NetAccuracy, ForgottenCgroupLeavesNoFlows) {
  NetFixture f = startNet("atoll-test-forget");
  if (!f.net) GTEST_SKIP() << f.skip;
  NetCounters c = run(f, udpExchange);
  EXPECT_EQ(c.txPackets, static_cast<uint64_t>(kDatagrams));
  const uint64_t id = f.cgroup->id();
  ASSERT_GT(flowsOf(*f.net, id), 0u);

  // Another cgroup's end leaves these flows alone.
  f.net->forget(id + 1);
  EXPECT_GT(flowsOf(*f.net, id), 0u);

  f.net->forget(id);
  EXPECT_EQ(flowsOf(*f.net, id), 0u);
  auto counters = f.net->read();
  ASSERT_TRUE(counters) << counters.error().message();
  EXPECT_EQ(counters->count(id), 0u);
}

size_t endpointsOwnedBy(const NetTelemetry& net, uint64_t cgroupId) {
  auto owners = net.readLocalEndpoints();
  EXPECT_TRUE(owners) << owners.error().message();
  if (!owners) return 0;
  return static_cast<size_t>(std::count_if(
      owners->begin(), owners->end(), [&](const auto& entry) { return entry.second == cgroupId; }));
}

// Cgroups that end together leave in one call: their flows, counters and the
// local endpoints they own, so a reused port is not credited to an ended
// cgroup; a cgroup still running keeps all of its entries.
TEST(NetAccuracy, ForgettingSeveralCgroupsDropsTheirFlowsAndEndpointsOnly) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  auto parent = testing::TestCgroup::create(access.mount, "atoll-test-forget-many");
  ASSERT_TRUE(parent) << parent.error().message();
  std::vector<testing::TestCgroup> children;
  for (const char* name : {"ended-a", "ended-b", "running"}) {
    auto child = testing::TestCgroup::create(parent->path(), name);
    ASSERT_TRUE(child) << child.error().message();
    children.push_back(std::move(*child));
  }
  NetTelemetryOptions options;
  options.cgroupPath = parent->path();
  auto net = NetTelemetry::start(options);
  if (!net) GTEST_SKIP() << "cgroup_skb programs unavailable: " << net.error().message();

  for (testing::TestCgroup& child : children) {
    pid_t pid = child.fork(udpExchange);
    ASSERT_GT(pid, 0);
    child.start();
    int status = -1;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;
  }
  for (const testing::TestCgroup& child : children) {
    ASSERT_GT(flowsOf(**net, child.id()), 0u) << child.relativePath();
    ASSERT_GT(endpointsOwnedBy(**net, child.id()), 0u) << child.relativePath();
  }
  const size_t runningFlows = flowsOf(**net, children[2].id());
  const size_t runningEndpoints = endpointsOwnedBy(**net, children[2].id());

  const std::vector<uint64_t> ended = {children[0].id(), children[1].id()};
  (*net)->forget(ended);

  auto counters = (*net)->read();
  ASSERT_TRUE(counters) << counters.error().message();
  for (uint64_t id : ended) {
    EXPECT_EQ(flowsOf(**net, id), 0u) << id;
    EXPECT_EQ(endpointsOwnedBy(**net, id), 0u) << id;
    EXPECT_EQ(counters->count(id), 0u) << id;
  }
  EXPECT_EQ(flowsOf(**net, children[2].id()), runningFlows);
  EXPECT_EQ(endpointsOwnedBy(**net, children[2].id()), runningEndpoints);
  EXPECT_EQ(counters->count(children[2].id()), 1u);
}

}  // namespace
}  // namespace Atoll::telemetry
