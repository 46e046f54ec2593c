// atoll transfer: the transfer engine from the command line.
//   serve  receive images into a staging directory (and relay migration
//          tunnels to a local QEMU socket, or hand their connections to a
//          local QEMU over its QMP socket) until interrupted; a host-wide
//          receive cap is shared fairly among the transfers running at once
//          and re-read from --host-bwlimit-file on SIGHUP
//   send   pre-copy a file or block device to a peer in rounds, with a
//          progress line (bytes, rate, round, ETA) or --json
//   list   the transfers the running atolld carries (bytes, rate, round,
//          state), its host-wide cap and the images it received
//   limit  change atolld's host-wide cap while its transfers run
//   cancel stop one of atolld's transfers
//   migrate live-migrate a QEMU VM through the tunnel, handing the
//          connection to QEMU or relaying it (tools/TransferMigrate.cpp)
// serve and send take --cpus LIST: each transfer side then runs on one of
// those CPUs (migrate/transfer/TransferCpus.h).
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "migrate/transfer/ImageSender.h"
#include "migrate/transfer/QemuMigration.h"
#include "migrate/transfer/Rate.h"
#include "migrate/transfer/ReceiveReportJson.h"
#include "migrate/transfer/TransferCpus.h"
#include "migrate/transfer/TransferServer.h"
#include "numa/CpuSet.h"
#include "tools/DaemonClient.h"
#include "tools/JsonCells.h"
#include "tools/NumberOptions.h"
#include "tools/TransferMigrate.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

using namespace Atoll::transfer;

[[noreturn]] void fail(const std::string& message, ExitCode code) {
  std::cerr << "atoll transfer: " << message << "\n";
  throw CLI::RuntimeError(code);
}

struct TlsArgs {
  std::string cert, key, ca;
  void add(CLI::App* app) {
    app->add_option("--tls-cert", cert, "PEM certificate of this side (enables TLS 1.3)");
    app->add_option("--tls-key", key, "PEM private key of this side");
    app->add_option("--tls-ca", ca, "PEM CA that must have signed the peer's certificate");
  }
  TlsConfig config() const {
    bool any = !cert.empty() || !key.empty() || !ca.empty();
    if (any && (cert.empty() || key.empty() || ca.empty())) {
      fail("--tls-cert, --tls-key and --tls-ca go together", kExitUsage);
    }
    return {cert, key, ca};
  }
};

struct ServeArgs {
  std::string dir;
  std::string listen = "0.0.0.0:7477";
  std::string tunnelTo;
  std::string tunnelQmp;
  std::vector<std::string> allowDevices;
  std::string hostBwlimit = "0";
  std::string hostBwlimitFile;
  std::string cpus;
  bool pipelined = false;
  bool once = false;
  bool json = false;
  TlsArgs tls;
};

struct SendArgs {
  std::string file;
  std::string peer;
  std::string name;
  uint32_t rounds = 1;
  std::string bwlimit = "0";
  uint32_t blockSize = kDefaultBlockSize;
  uint64_t downtimeMs = 300;
  std::string cpus;
  bool pipelined = false;
  bool json = false;
  TlsArgs tls;
};

constexpr const char* kPipelinedHelp =
    "Hand the file or socket work of each block to a second thread, overlapping it with the "
    "next block; pays only where one CPU limits a side and a second shares its caches "
    "(default: one thread per side)";

constexpr const char* kCpusHelp =
    "The CPUs this side of a transfer runs on, e.g. 0-3,8: each transfer on one of them "
    "(fewest running); default: wherever the scheduler puts it";

// Parsed and checked against the CPUs this process may use before anything
// connects or listens, so a typo is refused rather than found mid-transfer.
TransferCpus transferCpus(const std::string& text) {
  auto list = numa::parseCpuList(text, "--cpus");
  if (!list) fail(list.error().message(), kExitUsage);
  auto cpus = TransferCpus::create(std::move(*list), "--cpus");
  if (!cpus) fail(cpus.error().message(), kExitUsage);
  return std::move(*cpus);
}

std::atomic<bool> interrupted{false};
std::atomic<bool> reloadRequested{false};

// The host-wide cap as written in `path` (one rate, e.g. "200M"); a bad file
// is reported and changes nothing.
void reloadHostLimit(const std::string& path, HostBandwidth& host) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) {
    std::cerr << "atoll transfer: " << path
              << ": cannot read a rate; host bandwidth limit unchanged\n";
    return;
  }
  auto rate = parseRate(text, path);
  if (!rate) {
    std::cerr << "atoll transfer: " << rate.error().message()
              << "; host bandwidth limit unchanged\n";
    return;
  }
  host.setLimit(*rate);
  std::cerr << "atoll transfer: host bandwidth limit now " << *rate << " bytes/s"
            << (*rate == 0 ? " (none)" : "") << " from " << path << "\n";
}

void runServe(const ServeArgs& args) {
  auto listen = parseEndpoint(args.listen);
  if (!listen) fail(listen.error().message(), kExitUsage);
  ServerConfig config;
  config.stagingDirectory = args.dir;
  config.listen = *listen;
  config.tls = args.tls.config();
  config.tunnelDestination = args.tunnelTo;
  config.tunnelDestinationQmp = args.tunnelQmp;
  if (!args.tunnelQmp.empty() && config.tls.enabled()) {
    fail("--tunnel-qmp " + args.tunnelQmp +
             ": hand-off runs on plaintext connections only (a TLS session in user space cannot "
             "be handed to QEMU); leave out --tunnel-qmp or the --tls-* options",
         kExitUsage);
  }
  config.allowedDevices = args.allowDevices;
  auto hostRate = parseRate(args.hostBwlimit, "--host-bwlimit");
  if (!hostRate) fail(hostRate.error().message(), kExitUsage);
  HostBandwidth host(*hostRate);
  if (!args.hostBwlimitFile.empty()) reloadHostLimit(args.hostBwlimitFile, host);
  config.hostBandwidth = &host;
  TransferCpus cpus = transferCpus(args.cpus);
  config.receiver.cpus = &cpus;
  config.receiver.pipelined = args.pipelined;
  std::atomic<int> sessions{0}, failures{0};
  config.onSession = [&](const std::string& peer, const Result<ReceiveReport>& result) {
    ++sessions;
    if (!result) ++failures;
    if (args.json) {
      std::cout << transfer::receivedSessionJson(peer, result).dump() << std::endl;
    } else if (result) {
      std::cerr << "atoll transfer: " << peer << ": "
                << (result->committed ? "committed " + result->finalPath
                                      : std::string("session ended"))
                << (result->resumed ? " (resumed)" : "") << "; records: " << result->recordLayer
                << (result->cpu >= 0 ? "; CPU " + std::to_string(result->cpu) : std::string())
                << "\n";
    } else {
      std::cerr << "atoll transfer: " << peer << ": " << result.error().message() << "\n";
    }
  };
  auto server = TransferServer::create(config);
  if (!server) fail(server.error().message(), kExitFailure);
  std::cerr << "atoll transfer: serving " << args.dir << " on " << listen->host << ":"
            << (*server)->port()
            << (config.tls.enabled()
                    ? std::string(" (TLS 1.3, client certificates; record layer: ") +
                          (kernelTlsAvailable()
                               ? "kernel TLS for sending on TCP, Atoll's records for receiving"
                               : "user space, this kernel has no kernel TLS") +
                          ")"
                    : std::string())
            << "\n";
  ::signal(SIGINT, [](int) { interrupted = true; });
  ::signal(SIGTERM, [](int) { interrupted = true; });
  ::signal(SIGHUP, [](int) { reloadRequested = true; });
  (*server)->start();
  while (!interrupted && !(args.once && sessions > 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (reloadRequested.exchange(false)) {
      if (args.hostBwlimitFile.empty()) {
        std::cerr << "atoll transfer: SIGHUP ignored: no --host-bwlimit-file to re-read\n";
      } else {
        reloadHostLimit(args.hostBwlimitFile, host);
      }
    }
  }
  (*server)->stop();
  if (failures > 0) throw CLI::RuntimeError(kExitFailure);
}

std::string mib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", bytes / (1 << 20));
  return text;
}

void runSend(const SendArgs& args) {
  auto peer = parseEndpoint(args.peer);
  if (!peer) fail(peer.error().message(), kExitUsage);
  auto rate = parseRate(args.bwlimit, "--bwlimit");
  if (!rate) fail(rate.error().message(), kExitUsage);
  if (args.rounds == 0) fail("--rounds must be at least 1", kExitUsage);
  std::string name = args.name;
  if (name.empty()) name = args.file.substr(args.file.rfind('/') + 1);
  TlsConfig tls = args.tls.config();
  TransferCpus cpus = transferCpus(args.cpus);

  TransferLimiter limiter(*rate, nullptr);
  SenderOptions options;
  options.remoteName = name;
  options.blockSize = args.blockSize;
  options.limiter = &limiter;
  options.cpus = &cpus;
  options.pipelined = args.pipelined;
  // The same source, name and size give the same id, so a rerun resumes.
  char* real = ::realpath(args.file.c_str(), nullptr);
  std::string identity = std::string(real != nullptr ? real : args.file.c_str()) + "\n" + name;
  ::free(real);
  options.transferId = XXH3_64bits(identity.data(), identity.size());

  uint32_t currentRound = 0;
  uint64_t roundTotal = 0;
  auto roundStart = std::chrono::steady_clock::now();
  auto lastDraw = roundStart;
  options.onBlock = [&](uint64_t bytes) {
    auto now = std::chrono::steady_clock::now();
    if (args.json || now - lastDraw < std::chrono::milliseconds(200)) return;
    lastDraw = now;
    double seconds = std::chrono::duration<double>(now - roundStart).count();
    double speed = seconds > 0 ? bytes / seconds : 0;
    double left = roundTotal > bytes ? (roundTotal - bytes) / std::max(speed, 1.0) : 0;
    std::fprintf(stderr, "\rround %u  %s / %s  %s/s  ETA %.0f s   ", currentRound,
                 mib(bytes).c_str(), mib(roundTotal).c_str(), mib(speed).c_str(), left);
  };
  auto sender = ImageSender::open(args.file, options);
  if (!sender) fail(sender.error().message(), kExitFailure);
  roundTotal = (*sender)->imageSize();

  SocketOptions socketOptions;
  auto fd = connectTcp(*peer, socketOptions.idleTimeout);
  if (!fd) fail(fd.error().message(), kExitUnavailable);
  auto socket = SocketChannel::create(std::move(*fd), peer->text(), socketOptions);
  if (!socket) fail(socket.error().message(), kExitFailure);
  std::unique_ptr<Channel> channel;
  if (tls.enabled()) {
    auto context = TlsContext::create(tls, TlsContext::Role::kClient);
    if (!context) fail(context.error().message(), kExitUsage);
    auto secured = TlsChannel::handshake(std::move(*socket), *context);
    if (!secured) fail(secured.error().message(), kExitPermission);
    if (args.json) {
      std::cout << nlohmann::json{{"record_layer", (*secured)->recordLayer()}}.dump() << std::endl;
    } else {
      std::cerr << "atoll transfer: TLS 1.3 with " << (*secured)->peerSubject()
                << "; records: " << (*secured)->recordLayer() << "\n";
    }
    channel = std::move(*secured);
  } else {
    channel = std::move(*socket);
  }
  if (auto a = (*sender)->attach(std::move(channel)); !a) fail(a.error().message(), kExitFailure);

  PreCopyPolicy policy;
  policy.maxRounds = args.rounds;
  policy.downtimeBudget = std::chrono::milliseconds(args.downtimeMs);
  bool cpuShown = false;
  policy.onRound = [&](const RoundReport& r) {
    if (args.json) {
      std::cout << nlohmann::json{{"round", r.round},
                                  {"final", r.final},
                                  {"blocks_sent", r.blocksSent},
                                  {"dirty_bytes", r.dirtyBytes},
                                  {"data_bytes", r.dataBytes},
                                  {"wire_bytes", r.wireBytes},
                                  {"seconds", r.seconds},
                                  {"bytes_per_second", r.bytesPerSecond()},
                                  {"cpu", r.cpu}}
                       .dump()
                << std::endl;
    } else {
      // This process sends one image, so every round lands on the same CPU
      // (the first listed: no other transfer here holds one); naming it once
      // keeps the round lines short.
      std::string where;
      if (r.cpu >= 0 && !cpuShown) {
        where = "  on CPU " + std::to_string(r.cpu);
        cpuShown = true;
      }
      std::fprintf(stderr, "\rround %u  %s dirty  %s on the wire  %.2f s  %s/s%s%s\n", r.round,
                   mib(static_cast<double>(r.dirtyBytes)).c_str(),
                   mib(static_cast<double>(r.wireBytes)).c_str(), r.seconds,
                   mib(r.bytesPerSecond()).c_str(), where.c_str(), r.final ? "  (final)" : "");
    }
    currentRound = r.round + 1;
    roundStart = std::chrono::steady_clock::now();
  };
  auto report = runPreCopy(**sender, policy);
  if (!report) fail(report.error().message(), kExitFailure);
  if (args.json) {
    std::cout << nlohmann::json{{"verified", report->verify.match},
                                {"image_hash", report->verify.sourceHash}}
                     .dump()
              << std::endl;
  } else {
    std::fprintf(stderr, "verified: whole-image hash %016llx matches\n",
                 static_cast<unsigned long long>(report->verify.sourceHash));
  }
}

struct DaemonArgs {
  bool json = false;
  std::string rate;
  uint64_t id = 0;
  DaemonConnection connection;
};

void runList(const DaemonArgs& args) {
  DaemonClient client(args.connection);
  DaemonReply reply = expectSuccess(client.get("/v1/transfers"), args.json);
  const nlohmann::json& body = reply.body;
  if (args.json) {
    std::cout << body.dump(2) << "\n";
    return;
  }
  std::cout << "host-wide cap " << formatRate(body.value("host_bwlimit", uint64_t(0)))
            << ", receiving "
            << (body.value("listen", nlohmann::json()).is_string()
                    ? "on " + textCell(body, "listen") + " into " +
                          textCell(body, "staging_directory")
                    : std::string("off"))
            << "\n";
  const nlohmann::json transfers = body.value("transfers", nlohmann::json::array());
  if (transfers.empty()) {
    std::cout << "(no transfers)\n";
  } else {
    std::printf("%-5s %-10s %5s %21s %12s %12s  %-22s %s\n", "ID", "STATE", "ROUND",
                "BYTES / IMAGE", "RATE", "LIMIT", "PEER", "NAME");
    for (const auto& t : transfers) {
      std::string bytes = mib(t.value("bytes", 0.0)) + " / " + mib(t.value("image_bytes", 0.0));
      std::string limit =
          t.contains("rate_limit") ? formatRate(t.value("rate_limit", uint64_t(0))) : "-";
      std::printf("%-5s %-10s %5s %21s %12s %12s  %-22s %s\n", textCell(t, "id").c_str(),
                  textCell(t, "state").c_str(), textCell(t, "round").c_str(), bytes.c_str(),
                  formatRate(static_cast<uint64_t>(t.value("bytes_per_second", 0.0))).c_str(),
                  limit.c_str(), textCell(t, "peer").c_str(), textCell(t, "name").c_str());
      if (t.contains("error")) std::cout << "      " << textCell(t, "error") << "\n";
    }
  }
  for (const auto& r : body.value("received", nlohmann::json::array())) {
    std::cout << "received from " << textCell(r, "peer") << ": "
              << (r.value("ok", false) ? (r.value("committed", false) ? "committed " : "partial ") +
                                             textCell(r, "path")
                                       : textCell(r, "error"))
              << "\n";
  }
}

void runLimit(const DaemonArgs& args) {
  auto rate = parseRate(args.rate, "RATE");
  if (!rate) fail(rate.error().message(), kExitUsage);
  DaemonClient client(args.connection);
  DaemonReply reply = expectSuccess(
      client.put("/v1/transfers/host-bwlimit", nlohmann::json{{"bwlimit", *rate}}), args.json);
  if (args.json) {
    std::cout << reply.body.dump() << "\n";
  } else {
    std::cout << "host-wide cap " << formatRate(reply.body.value("before", uint64_t(0))) << " -> "
              << formatRate(reply.body.value("host_bwlimit", uint64_t(0))) << "\n";
  }
}

void runCancel(const DaemonArgs& args) {
  DaemonClient client(args.connection);
  DaemonReply reply =
      expectSuccess(client.remove("/v1/transfers/" + std::to_string(args.id)), args.json);
  if (args.json) {
    std::cout << reply.body.dump() << "\n";
  } else {
    std::cout << "transfer " << args.id << ": cancelling\n";
  }
}

}  // namespace

void addTransferVerb(CLI::App& app) {
  auto* transfer = app.add_subcommand("transfer", "Move images and migration streams to a peer");
  transfer->require_subcommand(1);

  auto serveArgs = std::make_shared<ServeArgs>();
  auto* serve = transfer->add_subcommand("serve", "Receive images into a staging directory");
  serve->add_option("--dir", serveArgs->dir, "Staging directory (images land only inside it)")
      ->required();
  serve->add_option("--listen", serveArgs->listen, "HOST:PORT to listen on")->capture_default_str();
  serve->add_option("--tunnel-to", serveArgs->tunnelTo,
                    "Unix socket of the destination QEMU (-incoming unix:PATH), for relayed "
                    "migrations (`atoll transfer migrate --relay`, multifd)");
  serve->add_option("--tunnel-qmp", serveArgs->tunnelQmp,
                    "QMP unix socket of the destination QEMU started with -incoming defer: "
                    "migrations are handed over (the connection itself goes to that QEMU, "
                    "`migrate-incoming fd:NAME`); plaintext only, not with --tls-*");
  serve->add_option("--allow-device", serveArgs->allowDevices,
                    "Block device peers may write to by absolute path (repeatable; the device "
                    "node itself, not a symlink)");
  serve
      ->add_option("--host-bwlimit", serveArgs->hostBwlimit,
                   "Host-wide receive cap in bytes/s (k, M, G; 0 = none), shared fairly among "
                   "concurrent transfers")
      ->capture_default_str();
  serve->add_option("--host-bwlimit-file", serveArgs->hostBwlimitFile,
                    "File holding the host-wide cap; read at start and again on SIGHUP, so the "
                    "cap changes while transfers run");
  serve->add_option("--cpus", serveArgs->cpus, kCpusHelp);
  serve->add_flag("--pipelined", serveArgs->pipelined, kPipelinedHelp);
  serve->add_flag("--once", serveArgs->once, "Exit after one session");
  serve->add_flag("--json", serveArgs->json, "One JSON line per session on stdout");
  serveArgs->tls.add(serve);
  serve->callback([serveArgs] { runServe(*serveArgs); });

  auto sendArgs = std::make_shared<SendArgs>();
  auto* send = transfer->add_subcommand("send", "Pre-copy a file or block device to a peer");
  send->add_option("FILE", sendArgs->file, "Source file or block device")->required();
  send->add_option("HOST:PORT", sendArgs->peer, "Peer running `atoll transfer serve`")->required();
  send->add_option("--name", sendArgs->name, "Name under the peer's staging directory");
  send->add_option("--rounds", sendArgs->rounds, "Most pre-copy rounds, the final one included")
      ->check(kDecimal)
      ->capture_default_str();
  send->add_option("--bwlimit", sendArgs->bwlimit, "Bandwidth cap in bytes/s (k, M, G; 0 = none)")
      ->capture_default_str();
  send->add_option("--block-size", sendArgs->blockSize, "Block size in bytes (power of two)")
      ->check(kDecimal)
      ->capture_default_str();
  // Bounded as QEMU bounds its downtime-limit; beyond the signed range of
  // milliseconds a budget would turn negative and never be met.
  send->add_option("--downtime-ms", sendArgs->downtimeMs,
                   "Stop pre-copying when a round would fit in this budget")
      ->check(kDecimal)
      ->check(CLI::Range(uint64_t(0), transfer::kMaxDowntimeLimitMs))
      ->capture_default_str();
  send->add_option("--cpus", sendArgs->cpus, kCpusHelp);
  send->add_flag("--pipelined", sendArgs->pipelined, kPipelinedHelp);
  send->add_flag("--json", sendArgs->json, "One JSON line per round on stdout");
  sendArgs->tls.add(send);
  send->callback([sendArgs] { runSend(*sendArgs); });

  addTransferMigrateSubcommand(*transfer);

  auto listArgs = std::make_shared<DaemonArgs>();
  auto* list = transfer->add_subcommand(
      "list", "Transfers the running atolld carries: bytes, rate, round, state");
  list->add_flag("--json", listArgs->json, "The daemon's reply as JSON");
  addDaemonOptions(*list, listArgs->connection);
  list->callback([listArgs] { runList(*listArgs); });

  auto limitArgs = std::make_shared<DaemonArgs>();
  auto* limit = transfer->add_subcommand(
      "limit", "Change atolld's host-wide bandwidth cap while its transfers run");
  limit->add_option("RATE", limitArgs->rate, "Bytes/s (k, M, G; 0 = none)")->required();
  limit->add_flag("--json", limitArgs->json, "The daemon's reply as JSON");
  addDaemonOptions(*limit, limitArgs->connection);
  limit->callback([limitArgs] { runLimit(*limitArgs); });

  auto cancelArgs = std::make_shared<DaemonArgs>();
  auto* cancel = transfer->add_subcommand("cancel", "Stop one of atolld's transfers");
  cancel->add_option("ID", cancelArgs->id, "Transfer id from `atoll transfer list`")
      ->check(kDecimal)
      ->required();
  cancel->add_flag("--json", cancelArgs->json, "The daemon's reply as JSON");
  addDaemonOptions(*cancel, cancelArgs->connection);
  cancel->callback([cancelArgs] { runCancel(*cancelArgs); });
}

}  // namespace Atoll::cli
