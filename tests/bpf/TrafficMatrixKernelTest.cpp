// The workload-to-workload traffic matrix on real loopback traffic: two
// cgroups exchange a known number of bytes over UDP and TCP, and the peer
// join reports A -> B and B -> A with those bytes. Byte counts are skb->len
// at cgroup_skb: IPv4 header (20) + UDP (8) or TCP (20-60) header + payload;
// TCP cells include the handshake, acknowledgements and FINs, so their
// payload is exact (plus what the sender retransmitted, which it reports
// from TCP_INFO: a loaded host can drop loopback segments) and their headers
// are bounded per packet.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "TestCgroup.h"
#include "bpf/collector/Collector.h"
#include "bpf/collector/TrafficMatrix.h"
#include "bpf/loaders/NetTelemetry.h"

namespace Atoll::telemetry {
namespace {

constexpr int kDatagrams = 20;
constexpr size_t kDatagramPayload = 700;
constexpr size_t kTcpRequest = 150000;  // A sends to B
constexpr size_t kTcpReply = 60000;     // B sends back to A

sockaddr_in loopbackAddress(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

uint16_t localPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

bool sendAll(int fd, size_t bytes) {
  std::vector<char> buf(bytes, 'x');
  size_t sent = 0;
  while (sent < bytes) {
    ssize_t n = ::send(fd, buf.data() + sent, bytes - sent, 0);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool receiveAll(int fd, size_t bytes) {
  std::vector<char> buf(65536);
  size_t received = 0;
  while (received < bytes) {
    ssize_t n = ::recv(fd, buf.data(), std::min(buf.size(), bytes - received), 0);
    if (n <= 0) return false;
    received += static_cast<size_t>(n);
  }
  return true;
}

// Payload bytes the socket retransmitted, written to `out` for the test.
bool reportRetransmitted(int fd, int out) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  uint64_t bytes = info.tcpi_bytes_retrans;
  return ::write(out, &bytes, sizeof(bytes)) == sizeof(bytes);
}

void bounded(int fd) {
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
}

// B: a UDP echo for kDatagrams datagrams and a TCP server that reads the
// request and answers; its ports go to A through `portsOut`.
int serveB(int portsOut, int retransOut) {
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in any = loopbackAddress(0);
  if (::bind(udp, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) return 1;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) return 2;
  if (::listen(listener, 1) != 0) return 3;
  bounded(udp);
  uint16_t ports[2] = {localPort(udp), localPort(listener)};
  if (::write(portsOut, ports, sizeof(ports)) != sizeof(ports)) return 4;
  std::vector<char> buf(kDatagramPayload);
  for (int i = 0; i < kDatagrams; ++i) {
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    if (::recvfrom(udp, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len) !=
        static_cast<ssize_t>(buf.size()))
      return 5;
    if (::sendto(udp, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), len) !=
        static_cast<ssize_t>(buf.size()))
      return 6;
  }
  int server = ::accept(listener, nullptr, nullptr);
  if (server < 0) return 7;
  bounded(server);
  if (!receiveAll(server, kTcpRequest)) return 8;
  if (!sendAll(server, kTcpReply)) return 9;
  // The client closes first; wait for its FIN before closing.
  char byte;
  if (::recv(server, &byte, 1, 0) != 0) return 10;
  if (!reportRetransmitted(server, retransOut)) return 11;
  ::close(server);
  ::close(listener);
  ::close(udp);
  return 0;
}

// A: the client of both.
int clientA(int portsIn, int retransOut) {
  uint16_t ports[2] = {};
  if (::read(portsIn, ports, sizeof(ports)) != sizeof(ports)) return 1;
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  bounded(udp);
  sockaddr_in to = loopbackAddress(ports[0]);
  std::vector<char> buf(kDatagramPayload, 'u');
  for (int i = 0; i < kDatagrams; ++i) {
    if (::sendto(udp, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) !=
        static_cast<ssize_t>(buf.size()))
      return 2;
    if (::recv(udp, buf.data(), buf.size(), 0) != static_cast<ssize_t>(buf.size())) return 3;
  }
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bounded(client);
  sockaddr_in server = loopbackAddress(ports[1]);
  if (::connect(client, reinterpret_cast<sockaddr*>(&server), sizeof(server)) != 0) return 4;
  if (!sendAll(client, kTcpRequest)) return 5;
  if (!receiveAll(client, kTcpReply)) return 6;
  if (!reportRetransmitted(client, retransOut)) return 7;
  ::close(client);
  ::close(udp);
  return 0;
}

// Runs the exchange: B serves in cgroup b, A is its client in cgroup a. The
// TCP bytes each side retransmitted come back so the cells can be exact.
struct Retransmitted {
  uint64_t byA = 0;
  uint64_t byB = 0;
};

Retransmitted exchange(testing::TestCgroup& a, testing::TestCgroup& b) {
  Retransmitted out;
  int ports[2], retransA[2], retransB[2];
  EXPECT_EQ(::pipe(ports), 0);
  EXPECT_EQ(::pipe(retransA), 0);
  EXPECT_EQ(::pipe(retransB), 0);
  pid_t server = b.fork([&] { return serveB(ports[1], retransB[1]); });
  pid_t client = a.fork([&] { return clientA(ports[0], retransA[1]); });
  EXPECT_GT(server, 0);
  EXPECT_GT(client, 0);
  b.start();
  a.start();
  for (pid_t pid : {client, server}) {
    int status = -1;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "worker " << pid << " status " << status;
  }
  EXPECT_EQ(::read(retransA[0], &out.byA, sizeof(uint64_t)), 8);
  EXPECT_EQ(::read(retransB[0], &out.byB, sizeof(uint64_t)), 8);
  for (int fd : {ports[0], ports[1], retransA[0], retransA[1], retransB[0], retransB[1]})
    ::close(fd);
  return out;
}

const CgroupTraffic* cell(const std::vector<CgroupTraffic>& matrix, uint64_t from, uint64_t to) {
  for (const CgroupTraffic& c : matrix)
    if (c.fromCgroup == from && c.toCgroup == to) return &c;
  return nullptr;
}

TEST(TrafficMatrix, TwoCgroupsOverLoopbackAreJoinedWorkloadToWorkload) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  auto parent = testing::TestCgroup::create(access.mount, "atoll-test-matrix");
  ASSERT_TRUE(parent) << parent.error().message();
  auto a = testing::TestCgroup::create(parent->path(), "a");
  ASSERT_TRUE(a) << a.error().message();
  auto b = testing::TestCgroup::create(parent->path(), "b");
  ASSERT_TRUE(b) << b.error().message();
  NetTelemetryOptions options;
  options.cgroupPath = parent->path();
  auto net = NetTelemetry::start(options);
  if (!net) GTEST_SKIP() << "cgroup_skb programs unavailable: " << net.error().message();

  const Retransmitted retransmitted = exchange(*a, *b);
  ASSERT_FALSE(HasFailure());
  const uint64_t retransmittedByA = retransmitted.byA, retransmittedByB = retransmitted.byB;
  RecordProperty("tcp_bytes_retransmitted_by_a", std::to_string(retransmittedByA));
  RecordProperty("tcp_bytes_retransmitted_by_b", std::to_string(retransmittedByB));

  auto flows = (*net)->readFlows();
  ASSERT_TRUE(flows) << flows.error().message();
  auto owners = (*net)->readLocalEndpoints();
  ASSERT_TRUE(owners) << owners.error().message();
  auto errors = (*net)->errors();
  ASSERT_TRUE(errors) << errors.error().message();
  ASSERT_EQ(errors->flowMapFull, 0u);
  const std::vector<CgroupTraffic> matrix = joinLocalPeers(*flows, *owners);
  const CgroupTraffic* aToB = cell(matrix, a->id(), b->id());
  const CgroupTraffic* bToA = cell(matrix, b->id(), a->id());
  ASSERT_NE(aToB, nullptr) << matrix.size() << " cells";
  ASSERT_NE(bToA, nullptr) << matrix.size() << " cells";
  EXPECT_EQ(matrix.size(), 2u);

  const uint64_t udpPayload = kDatagrams * kDatagramPayload;
  EXPECT_EQ(aToB->payloadBytes, udpPayload + kTcpRequest + retransmittedByA);
  EXPECT_EQ(bToA->payloadBytes, udpPayload + kTcpReply + retransmittedByB);
  // Headers: 28 bytes per datagram exactly; 40-80 per TCP packet.
  for (const CgroupTraffic* c : {aToB, bToA}) {
    ASSERT_GT(c->packets, static_cast<uint64_t>(kDatagrams));
    const uint64_t tcpPackets = c->packets - kDatagrams;
    const uint64_t headers = c->bytes - c->payloadBytes;
    EXPECT_GE(headers, kDatagrams * 28 + tcpPackets * 40);
    EXPECT_LE(headers, kDatagrams * 28 + tcpPackets * 80);
  }
  RecordProperty("a_to_b_bytes", std::to_string(aToB->bytes));
  RecordProperty("b_to_a_bytes", std::to_string(bToA->bytes));
}

// The collector joins the matrix to workloads: each of the two reports the
// other in talksTo (`atoll top --json`, GET /v1/workloads "talks_to").
TEST(TrafficMatrix, CollectorReportsWhichWorkloadsTalkToEachOther) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  auto parent = testing::TestCgroup::create(access.mount, "atoll-test-talk");
  ASSERT_TRUE(parent) << parent.error().message();
  auto a = testing::TestCgroup::create(parent->path(), "a");
  ASSERT_TRUE(a) << a.error().message();
  auto b = testing::TestCgroup::create(parent->path(), "b");
  ASSERT_TRUE(b) << b.error().message();
  CollectorOptions options;
  options.cgroupMount = access.mount;
  options.selectors = {parent->relativePath() + "/*"};
  options.libvirtUri.clear();
  options.schedProbe = false;
  options.blockProbe = false;
  options.netSubtree = parent->relativePath();
  options.slowSignalsEveryTicks = 1;
  auto collector = Collector::start(options, nullptr);
  ASSERT_TRUE(collector) << collector.error().message();
  for (const std::string& line : (*collector)->degraded())
    if (line.rfind("network", 0) == 0) GTEST_SKIP() << line;
  ASSERT_EQ((*collector)->tick().born.size(), 2u);

  exchange(*a, *b);
  ASSERT_FALSE(HasFailure());

  TickReport report = (*collector)->tick();
  ASSERT_EQ(report.workloads.size(), 2u);
  const uint32_t numberA = (*collector)->registry().byCgroupId(a->id())->number;
  const uint32_t numberB = (*collector)->registry().byCgroupId(b->id())->number;
  for (const WorkloadSnapshot& row : report.workloads) {
    ASSERT_EQ(row.talksTo.size(), 1u) << row.workload.cgroup.path;
    const WorkloadTraffic& peer = row.talksTo[0];
    const bool isA = row.workload.number == numberA;
    EXPECT_EQ(peer.workload, isA ? numberB : numberA);
    // Payload plus headers: at least the payload each way.
    const uint64_t udp = kDatagrams * kDatagramPayload;
    EXPECT_GE(peer.txBytes, udp + (isA ? kTcpRequest : kTcpReply));
    EXPECT_GE(peer.rxBytes, udp + (isA ? kTcpReply : kTcpRequest));
  }
}

}  // namespace
}  // namespace Atoll::telemetry
