// Deterministic mutation fuzzing, run by the test suite with a fixed seed and
// a fixed iteration budget, of the two parsers that take untrusted input: the
// API request path (cpp-httplib's parsing plus our routes and body checks,
// driven through the same per-connection code the accept loop runs) and the
// configuration parser. Each input must give a well-formed answer (4xx with a
// reason, or a configuration that satisfies its documented bounds) and leave
// the daemon working.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include "runtime/ApiRequests.h"
#include "runtime/Config.h"
#include "tests/runtime/ApiHarness.h"

namespace Atoll {
namespace {

constexpr uint64_t kSeed = 0x41544f4c4cULL;  // fixed: failures reproduce
constexpr int kRequestIterations = 2500;
constexpr int kConfigIterations = 20000;
constexpr int kBodyIterations = 20000;

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }

  std::string mutate(std::string input, const std::vector<std::string>& corpus,
                     const std::vector<std::string>& dictionary) {
    int rounds = 1 + static_cast<int>(below(4));
    for (int r = 0; r < rounds; ++r) {
      switch (below(9)) {
        case 0:  // flip a bit
          if (!input.empty()) input[below(input.size())] ^= static_cast<char>(1 << below(8));
          break;
        case 1:  // random byte
          if (!input.empty()) input[below(input.size())] = static_cast<char>(below(256));
          break;
        case 2:  // delete a run
          if (!input.empty()) {
            size_t at = below(input.size());
            input.erase(at, below(16) + 1);
          }
          break;
        case 3:  // insert a dictionary token
          input.insert(below(input.size() + 1), dictionary[below(dictionary.size())]);
          break;
        case 4:  // duplicate a run
          if (!input.empty()) {
            size_t at = below(input.size());
            input.insert(at, input.substr(at, below(32) + 1));
          }
          break;
        case 5:  // splice with another corpus entry
        {
          const std::string& other = corpus[below(corpus.size())];
          size_t cut = below(input.size() + 1);
          input = input.substr(0, cut) + other.substr(below(other.size() + 1));
          break;
        }
        case 6:  // truncate
          input.resize(below(input.size() + 1));
          break;
        case 7:  // replace a number with an extreme one
        {
          size_t at = input.find_first_of("0123456789", below(input.size() + 1));
          if (at != std::string::npos) {
            static const char* extremes[] = {
                "0", "-1", "18446744073709551616", "99999999999", "4294967295", "1e400", "007"};
            input.replace(at, 1, extremes[below(7)]);
          }
          break;
        }
        default:  // random printable run
        {
          std::string run;
          for (size_t i = below(12) + 1; i > 0; --i) run += static_cast<char>(32 + below(95));
          input.insert(below(input.size() + 1), run);
        }
      }
    }
    if (input.size() > 32 * 1024) input.resize(32 * 1024);
    return input;
  }

 private:
  std::mt19937_64 rng_;
};

// Sends raw bytes through the server's per-connection code over a socketpair
// and returns whatever it answered.
std::string serveRaw(UnixHttpServer& server, const std::string& request) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return "socketpair failed";
  UniqueFd client(pair[0]);
  int sndbuf = 256 * 1024;
  ::setsockopt(client.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(client.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(client.get(), SHUT_WR);
  server.serveConnection(pair[1]);  // closes pair[1]
  std::string answer;
  char buffer[8192];
  for (;;) {
    ssize_t n = ::recv(client.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
  }
  return answer;
}

TEST(Fuzz, ApiRequestParsing) {
  test::ApiHarness api(AccessPolicy(::getgid(), "test-admins"), std::chrono::milliseconds(200),
                       4096);
  std::vector<std::string> corpus = {
      test::httpRequest("GET", "/v1/status"),
      test::httpRequest("GET", "/v1/state?prefix=vm/"),
      test::httpRequest("GET", "/v1/state/vm/a"),
      test::httpRequest("PUT", "/v1/state/vm/a",
                        R"({"value": {"island": "latency", "cpus": [1, 2]}})"),
      test::httpRequest("PUT", "/v1/state/k", R"({"value": null})"),
      test::httpRequest("DELETE", "/v1/state/vm/a"),
      test::httpRequest("GET", "/v1/facts"),
      "PUT /v1/state/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json"
      "\r\n\r\nc\r\n{\"value\": 1}\r\n0\r\n\r\n",
      "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/state HTTP/1.1\r\nRange: bytes=0-3\r\n"
      "Connection: close\r\n\r\n",
  };
  std::vector<std::string> dictionary = {"\r\n",
                                         "\r\n\r\n",
                                         ": ",
                                         "Content-Length: ",
                                         "Transfer-Encoding: chunked\r\n",
                                         "Expect: 100-continue\r\n",
                                         "Range: bytes=1-2,4-\r\n",
                                         "%00",
                                         "%2e%2e/",
                                         "../",
                                         "//",
                                         "{",
                                         "}",
                                         "[",
                                         "\"value\"",
                                         "\\u0000",
                                         "\xff\xfe",
                                         "HTTP/1.0",
                                         "Connection: keep-alive\r\n",
                                         "Content-Type: application/json\r\n",
                                         "?prefix=",
                                         "&",
                                         "=",
                                         std::string(300, 'A')};
  Mutator mutator(kSeed);
  int answered = 0;
  for (int i = 0; i < kRequestIterations; ++i) {
    std::string input = mutator.mutate(corpus[mutator.below(corpus.size())], corpus, dictionary);
    std::string answer = serveRaw(api.server(), input);
    if (answer.empty()) continue;  // nothing parseable arrived: closing is a fine answer
    ++answered;
    ASSERT_EQ(answer.rfind("HTTP/1.1 ", 0), 0u)
        << "iteration " << i << ": " << answer.substr(0, 200);
    for (size_t at = answer.find("HTTP/1.1 "); at != std::string::npos;
         at = answer.find("HTTP/1.1 ", at + 1)) {
      int status = std::atoi(answer.c_str() + at + 9);
      ASSERT_TRUE(status == 100 || (status >= 200 && status < 500))
          << "iteration " << i << " got " << status << " for:\n"
          << input.substr(0, 400);
    }
  }
  EXPECT_GT(answered, kRequestIterations / 2);
  // Still serving, and the store is consistent with its own listing.
  std::string status = serveRaw(api.server(), test::httpRequest("GET", "/v1/status"));
  EXPECT_EQ(status.rfind("HTTP/1.1 200", 0), 0u) << status;
  EXPECT_EQ(api.store().list(Keyspace::Desired, "")->size(), api.store().size(Keyspace::Desired));
}

TEST(Fuzz, StatePutBodies) {
  std::vector<std::string> corpus = {R"({"value": 1})", R"({"value": {"a": [1, 2.5, "x"]}})",
                                     R"({"value": null})", R"({"value": "\u00e9"})"};
  std::vector<std::string> dictionary = {"{",  "}",    "[",    "]",     ",",
                                         ":",  "\"",   "\\",   "value", "1e999",
                                         "-0", "true", "null", "\xc3",  "\x80"};
  Mutator mutator(kSeed + 1);
  for (int i = 0; i < kBodyIterations; ++i) {
    std::string input = mutator.mutate(corpus[mutator.below(corpus.size())], corpus, dictionary);
    auto parsed = parseStatePutBody(input, "application/json");
    if (!parsed) {
      EXPECT_FALSE(parsed.error().detail.empty()) << input;
      continue;
    }
    // Whatever was accepted is the object's "value" and serializes back.
    auto whole = nlohmann::json::parse(input);
    EXPECT_EQ(*parsed, whole["value"]) << input;
  }
}

// What any accepted configuration must satisfy, whatever the input.
void expectWithinBounds(const DaemonConfig& c, const std::string& input) {
  SCOPED_TRACE(input);
  EXPECT_GE(c.tick.count(), 10);
  EXPECT_LE(c.tick.count(), 60000);
  EXPECT_LE(c.drainTimeout.count(), 600000);
  EXPECT_GE(c.apiThreads, 1u);
  EXPECT_LE(c.apiThreads, 64u);
  EXPECT_GE(c.maxBodyBytes, 1024u);
  EXPECT_EQ(c.socketPath.front(), '/');
  EXPECT_LE(c.socketPath.size(), 107u);
  EXPECT_EQ(c.stateDirectory.front(), '/');
  std::chrono::milliseconds budgets{0};
  for (const auto& [name, s] : c.subsystems) {
    EXPECT_GE(s.budget.count(), 1);
    budgets += s.budget;
  }
  EXPECT_LT(budgets, c.tick);
  for (size_t i = 0; i < c.islands.size(); ++i) {
    EXPECT_FALSE(c.islands[i].cpus.empty());
    for (size_t j = i + 1; j < c.islands.size(); ++j)
      EXPECT_TRUE(c.islands[i].cpus.intersect(c.islands[j].cpus).empty());
  }
}

TEST(Fuzz, ConfigParser) {
  std::string example =
      test::readTextFile(std::string(ATOLL_SOURCE_DIR) + "/runtime/atolld.example.toml");
  ASSERT_FALSE(example.empty());
  std::vector<std::string> corpus = {
      example,
      "[daemon]\ntick_ms = 250\n[subsystems.housekeeping]\nbudget_ms = 5\n",
      "[islands.a]\ncpus = \"0-3\"\nmems = [0]\n[islands.b]\ncpus = [4, 5, 6]\n",
      "[metrics]\nlisten = \"[::1]:9464\"\nenabled = false\n[api]\nthreads = 2\n",
  };
  std::vector<std::string> dictionary = {"\n",
                                         "[",
                                         "]",
                                         "[[",
                                         "]]",
                                         "=",
                                         "\"",
                                         "'",
                                         "\"\"\"",
                                         "#",
                                         ".",
                                         ",",
                                         "{",
                                         "}",
                                         "-",
                                         "true",
                                         "1979-05-27T07:32:00Z",
                                         "inf",
                                         "nan",
                                         "0x7f",
                                         "1_000",
                                         "\\u0000",
                                         "\\",
                                         "[islands.x]\ncpus = \"1-2\"\n",
                                         "cpus = ",
                                         "budget_ms = ",
                                         "tick_ms = ",
                                         "\xff"};
  Mutator mutator(kSeed + 2);
  int accepted = 0;
  for (int i = 0; i < kConfigIterations; ++i) {
    std::string input = mutator.mutate(corpus[mutator.below(corpus.size())], corpus, dictionary);
    ConfigParse parsed = parseConfig(input, "fuzz.toml");
    if (parsed.ok()) {
      ++accepted;
      expectWithinBounds(parsed.config, input);
      continue;
    }
    int lines = 1 + static_cast<int>(std::count(input.begin(), input.end(), '\n'));
    for (const auto& error : parsed.errors) {
      EXPECT_FALSE(error.message.empty()) << input;
      EXPECT_EQ(error.file, "fuzz.toml");
      EXPECT_GE(error.line, 0);
      EXPECT_LE(error.line, lines + 1) << input;
    }
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, kConfigIterations);
}

}  // namespace
}  // namespace Atoll
