#pragma once
// The local API exactly as atolld assembles it (UnixHttpServer, the /v1
// routes, an embedded store on a journal in a temporary directory), served on
// a temporary socket by a thread of the test.
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "runtime/ActionLog.h"
#include "runtime/ApiRoutes.h"
#include "runtime/EmbeddedStateStore.h"
#include "runtime/HostJournal.h"
#include "runtime/UnixHttpServer.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll::test {

class ApiHarness {
 public:
  explicit ApiHarness(AccessPolicy policy = AccessPolicy(std::nullopt, "atoll"),
                      std::chrono::milliseconds requestTimeout = std::chrono::milliseconds(800),
                      size_t maxBodyBytes = 64 * 1024)
      : context_{store_, std::move(policy),
                 [] {
                   return nlohmann::json{{"version", "test"}};
                 },
                 nullptr, maxBodyBytes} {
    auto journal = HostJournal::open(dir_.file("state"), {&store_, &actions_});
    if (!journal) throw std::runtime_error(journal.error().message());
    journal_ = std::move(*journal);
    store_.attach(*journal_);
    actions_.attach(*journal_);
    UnixHttpServer::Options options;
    options.socketPath = dir_.file("api.sock");
    options.requestTimeout = requestTimeout;
    options.keepAliveTimeout = std::chrono::milliseconds(300);
    options.threads = 3;
    options.maxBodyBytes = maxBodyBytes;
    server_ = std::make_unique<UnixHttpServer>(options);
    installApiRoutes(*server_, context_);
  }
  ~ApiHarness() { stop(); }

  void start() {
    auto bound = server_->bindSocket();
    if (!bound) throw std::runtime_error(bound.error().message());
    thread_ = std::thread([this] { server_->serve(); });
  }
  void stop() {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  const std::string& socketPath() const { return server_->socketPath(); }
  // The routes read it on every request: set the optional views before start().
  ApiContext& context() { return context_; }
  ActionLog& actions() { return actions_; }
  UnixHttpServer& server() { return *server_; }
  EmbeddedStateStore& store() { return store_; }
  HostJournal& journal() { return *journal_; }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  EmbeddedStateStore store_;
  ActionLog actions_;
  std::unique_ptr<HostJournal> journal_;
  ApiContext context_;
  std::unique_ptr<UnixHttpServer> server_;
  std::thread thread_;
};

}  // namespace Atoll::test
