#include "runtime/ApiRoutes.h"

#include <spdlog/spdlog.h>

#include <cerrno>

#include "runtime/ApiRequests.h"
#include "runtime/ForecastJson.h"
#include "runtime/MigrationRequests.h"

namespace Atoll {

namespace {

void reply(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  // Paths and values echoed back may hold bytes that are not UTF-8.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

void replyError(httplib::Response& res, int status, const std::string& reason) {
  reply(res, status, {{"error", reason}});
}

std::string reasonFor(const Error& error) {
  std::string out = error.operation;
  if (!error.value.empty()) out += " '" + error.value + "'";
  if (!error.detail.empty()) out += ": " + error.detail;
  if (error.errnum != 0) out = error.message();
  return out;
}

nlohmann::json entryJson(const StateEntry& entry) {
  return {{"key", entry.key}, {"value", entry.value}, {"revision", entry.revision}};
}

ChangeOrigin originOf(const httplib::Request& req) {
  auto peer = peerFromRequest(req);
  ChangeOrigin origin;
  origin.via = "api";
  if (peer) {
    origin.uid = peer->uid;
    origin.pid = peer->pid;
  }
  return origin;
}

void listKeys(ApiContext& ctx, Keyspace keyspace, const httplib::Request& req,
              httplib::Response& res) {
  std::string prefix = req.get_param_value("prefix");
  auto entries = ctx.store.list(keyspace, prefix);
  if (!entries) return replyError(res, 503, reasonFor(entries.error()));
  nlohmann::json items = nlohmann::json::array();
  for (const auto& entry : *entries) items.push_back(entryJson(entry));
  reply(res, 200, {{"revision", ctx.store.revision()}, {"entries", std::move(items)}});
}

void getKey(ApiContext& ctx, Keyspace keyspace, const httplib::Request& req,
            httplib::Response& res) {
  std::string key = req.matches[1];
  if (auto valid = validateStateKey(key); !valid)
    return replyError(res, 400, reasonFor(valid.error()));
  auto entry = ctx.store.get(keyspace, key);
  if (!entry) return replyError(res, 503, reasonFor(entry.error()));
  if (!*entry)
    return replyError(res, 404, "no " + std::string(keyspaceName(keyspace)) + " key '" + key + "'");
  reply(res, 200, entryJson(**entry));
}

// Why a migration did not start, as an HTTP status: the request itself,
// a QEMU or peer this daemon cannot reach (a gateway's failure), or QEMU's
// refusal in its present state.
int migrationStartStatus(transfer::MigrationStartFailure failure) {
  switch (failure) {
    case transfer::MigrationStartFailure::kInvalid:
      return 400;
    case transfer::MigrationStartFailure::kQemuUnreachable:
    case transfer::MigrationStartFailure::kPeerUnreachable:
      return 502;
    case transfer::MigrationStartFailure::kRefused:
      return 409;
  }
  return 500;
}

constexpr const char* kNoTransferEngine = "the transfer engine is not part of this daemon";

std::string_view defaultReason(int status) {
  switch (status) {
    case 400:
      return "malformed HTTP request";
    case 403:
      return "forbidden";
    case 404:
      return "no such endpoint";
    case 405:
      return "method not allowed";
    case 413:
      return "request body too large";
    case 414:
      return "request line too long";
    case 416:
      return "range not satisfiable";
    case 417:
      return "expectation failed";
    default:
      return status >= 500 ? "internal error" : "request refused";
  }
}

}  // namespace

void installApiRoutes(UnixHttpServer& server, ApiContext& ctx) {
  server.set_pre_routing_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
    auto peer = peerFromRequest(req);
    if (!peer) {
      replyError(res, 403, "the peer's credentials could not be read");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!ctx.policy.allows(*peer)) {
      replyError(res, 403, ctx.policy.refusal(*peer));
      return httplib::Server::HandlerResponse::Handled;
    }
    // httplib holds a body to the size limit only through its Content-Length,
    // before reading it; a chunked body it reads whole whatever its size.
    // This runs before any of the body is read.
    if (req.has_header("Transfer-Encoding")) {
      replyError(res, 411,
                 "a request body needs a Content-Length header (at most " +
                     std::to_string(ctx.maxBodyBytes) + " bytes); chunked bodies are not accepted");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Runs outside httplib's exception handling, so it must not throw.
  server.set_error_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    try {
      std::string reason(defaultReason(res.status));
      if (res.status == 404 && !req.method.empty())
        reason = "no such endpoint: " + req.method + " " + req.path;
      if (res.status == 413)
        reason = "request body larger than " + std::to_string(ctx.maxBodyBytes) + " bytes";
      replyError(res, res.status, reason);
    } catch (...) {
      res.set_content("{\"error\":\"request refused\"}\n", "application/json");
    }
  });

  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        replyError(res, 500, "internal error: " + what);
      });

  server.onRequestDone([&ctx](const httplib::Request& req, const httplib::Response& res) {
    if (ctx.metrics != nullptr) ctx.metrics->recordApiRequest(req.method, res.status);
    spdlog::debug("event=api_request method={} path=\"{}\" status={} peer={}", req.method, req.path,
                  res.status, req.remote_addr);
  });

  server.Get("/v1/status", [&ctx](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, ctx.status());
  });

  server.Get("/v1/state", [&ctx](const httplib::Request& req, httplib::Response& res) {
    listKeys(ctx, Keyspace::Desired, req, res);
  });
  server.Get("/v1/state/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    getKey(ctx, Keyspace::Desired, req, res);
  });
  server.Put("/v1/state/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string key = req.matches[1];
    if (auto valid = validateStateKey(key); !valid)
      return replyError(res, 400, reasonFor(valid.error()));
    auto value = parseStatePutBody(req.body, req.get_header_value("Content-Type"));
    if (!value) {
      int status = value.error().detail.find("Content-Type") != std::string::npos ? 415 : 400;
      return replyError(res, status, reasonFor(value.error()));
    }
    auto revision = ctx.store.put(Keyspace::Desired, key, std::move(*value), originOf(req));
    if (!revision) {
      spdlog::error("event=state_put_failed key={} error=\"{}\"", key, revision.error().message());
      return replyError(res, 503, "the change was not stored: " + revision.error().message());
    }
    reply(res, 200, {{"key", key}, {"revision", *revision}});
  });
  server.Delete("/v1/state/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string key = req.matches[1];
    if (auto valid = validateStateKey(key); !valid)
      return replyError(res, 400, reasonFor(valid.error()));
    auto revision = ctx.store.remove(Keyspace::Desired, key, originOf(req));
    if (!revision) {
      spdlog::error("event=state_delete_failed key={} error=\"{}\"", key,
                    revision.error().message());
      return replyError(res, 503, "the change was not stored: " + revision.error().message());
    }
    if (!*revision) return replyError(res, 404, "no desired key '" + key + "'");
    reply(res, 200, {{"key", key}, {"revision", **revision}});
  });

  server.Get("/v1/workloads", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.workloads == nullptr)
      return replyError(res, 503, "telemetry is not part of this daemon");
    auto latest = ctx.workloads->latest();
    if (latest) return reply(res, 200, *latest);
    std::string why = ctx.workloads->unavailableReason();
    replyError(
        res, 503,
        why.empty() ? "telemetry has not completed its first tick yet" : "telemetry: " + why);
  });
  server.Get("/v1/islands/forecast", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.forecast == nullptr)
      return replyError(res, 503, "the forecaster is not part of this daemon");
    reply(res, 200, ctx.forecast->islandsForecast());
  });
  server.Get("/v1/history/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (ctx.forecast == nullptr || ctx.workloads == nullptr)
      return replyError(res, 503, "the forecaster is not part of this daemon");
    std::string who = req.matches[1];
    auto workload = ctx.workloads->find(who);
    if (!workload) return replyError(res, 404, workload.error().message());
    reply(res, 200, ctx.forecast->workloadHistory(*workload));
  });
  server.Get("/v1/forecast/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (ctx.forecast == nullptr || ctx.workloads == nullptr)
      return replyError(res, 503, "the forecaster is not part of this daemon");
    std::string who = req.matches[1];
    std::string metricText = req.has_param("metric") ? req.get_param_value("metric") : "cpu";
    auto metric = parseForecastMetric(metricText);
    if (!metric)
      return replyError(res, 400,
                        "metric '" + metricText + "' is not one of cpu, memory, io, network");
    auto workload = ctx.workloads->find(who);
    if (!workload) return replyError(res, 404, workload.error().message());
    reply(res, 200, ctx.forecast->workloadForecast(*workload, *metric));
  });
  server.Get("/v1/plan", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.planner == nullptr)
      return replyError(res, 503, "the planner is not part of this daemon");
    nlohmann::json plan = ctx.planner->planJson();
    if (plan.is_null())
      return replyError(res, 503, "no planning pass yet: the first runs at the first tick");
    reply(res, 200, plan);
  });
  server.Get("/v1/plan/history", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.planner == nullptr)
      return replyError(res, 503, "the planner is not part of this daemon");
    reply(res, 200, ctx.planner->historyJson());
  });
  server.Get("/v1/plan/tuning", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.planner == nullptr)
      return replyError(res, 503, "the planner is not part of this daemon");
    reply(res, 200, ctx.planner->tuningJson());
  });
  server.Get("/v1/islands", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.islands == nullptr) return replyError(res, 503, "islands are not part of this daemon");
    reply(res, 200, ctx.islands->islandsJson());
  });
  // Island and pin changes: validated completely, then stored as desired
  // state; the islands subsystem applies them at its next tick.
  auto islandChange = [&ctx](IslandChange change, const std::string& name,
                             const httplib::Request& req, httplib::Response& res) {
    if (ctx.islands == nullptr) return replyError(res, 503, "islands are not part of this daemon");
    nlohmann::json body;
    if (change != IslandChange::Delete) {
      auto parsed = parseJsonBody(req.body, req.get_header_value("Content-Type"));
      if (!parsed) return replyError(res, 400, reasonFor(parsed.error()));
      body = std::move(*parsed);
    }
    std::string island = name;
    if (change == IslandChange::Create)
      island = body.is_object() && body.contains("name") && body["name"].is_string()
                   ? body["name"].get<std::string>()
                   : std::string();
    IslandChangeReply answer = ctx.islands->changeIsland(change, island, body, originOf(req));
    reply(res, answer.status, answer.body);
  };
  server.Post("/v1/islands", [islandChange](const httplib::Request& req, httplib::Response& res) {
    islandChange(IslandChange::Create, "", req, res);
  });
  server.Put("/v1/islands/([^/]+)",
             [islandChange](const httplib::Request& req, httplib::Response& res) {
               islandChange(IslandChange::Update, req.matches[1], req, res);
             });
  server.Delete("/v1/islands/([^/]+)",
                [islandChange](const httplib::Request& req, httplib::Response& res) {
                  islandChange(IslandChange::Delete, req.matches[1], req, res);
                });
  server.Put("/v1/pins/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (ctx.islands == nullptr) return replyError(res, 503, "islands are not part of this daemon");
    auto parsed = parseJsonBody(req.body, req.get_header_value("Content-Type"));
    if (!parsed) return replyError(res, 400, reasonFor(parsed.error()));
    if (parsed->is_null()) return replyError(res, 400, "the pin must be a JSON object, not null");
    IslandChangeReply answer = ctx.islands->changePin(req.matches[1], *parsed, originOf(req));
    reply(res, answer.status, answer.body);
  });
  server.Delete("/v1/pins/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (ctx.islands == nullptr) return replyError(res, 503, "islands are not part of this daemon");
    IslandChangeReply answer = ctx.islands->changePin(req.matches[1], nullptr, originOf(req));
    reply(res, answer.status, answer.body);
  });

  server.Post("/v1/transfers", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
    auto request = parseTransferRequest(req.body);
    if (!request) return replyError(res, 400, reasonFor(request.error()));
    auto id = ctx.transfers->start(*request);
    if (!id) return replyError(res, id.error().errnum == EBUSY ? 409 : 400, id.error().message());
    reply(res, 201, {{"id", *id}, {"peer", request->peer.text()}, {"name", request->name}});
  });
  server.Get("/v1/transfers", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
    reply(res, 200, ctx.transfers->transfersJson());
  });
  server.Put("/v1/transfers/host-bwlimit",
             [&ctx](const httplib::Request& req, httplib::Response& res) {
               if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
               auto limit = parseHostLimitBody(req.body);
               if (!limit) return replyError(res, 400, reasonFor(limit.error()));
               uint64_t before = ctx.transfers->hostLimit();
               ctx.transfers->setHostLimit(*limit);
               reply(res, 200, {{"host_bwlimit", *limit}, {"before", before}});
             });
  server.Delete("/v1/transfers/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
    auto id = parseTransferId(std::string(req.matches[1]));
    if (!id) return replyError(res, 400, reasonFor(id.error()));
    switch (ctx.transfers->cancel(*id)) {
      case CancelOutcome::Cancelled:
        return reply(res, 200, {{"id", *id}, {"state", "cancelling"}});
      case CancelOutcome::Unknown:
        return replyError(res, 404, "no transfer " + std::to_string(*id));
      case CancelOutcome::AlreadyFinished:
        return replyError(res, 409, "transfer " + std::to_string(*id) + " has already finished");
    }
  });

  // Incoming migrations: the destination QEMU is registered here; the
  // source host's daemon names the tunnel id this returns.
  server.Post(
      "/v1/migrations/incoming", [&ctx](const httplib::Request& req, httplib::Response& res) {
        if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
        auto port = ctx.transfers->listeningPort();
        if (!port)
          return replyError(res, 503,
                            "this daemon receives no migrations: [transfer] listen is not set");
        if (ctx.transfers->tlsEnabled())
          return replyError(res, 409,
                            "migration tunnels are plaintext only, and this daemon's receiving "
                            "endpoint requires TLS ([transfer] tls_certificate)");
        auto request = parseIncomingMigrationRequest(req.body);
        if (!request) return replyError(res, 400, reasonFor(request.error()));
        auto id = ctx.transfers->incomingMigrations().add(request->destination, request->lifetime);
        if (!id) return replyError(res, 400, reasonFor(id.error()));
        const auto& destination = request->destination;
        spdlog::info("event=migration_incoming_registered tunnel_id={} {}={} expires_s={}",
                     transfer::tunnelIdText(*id), destination.qmpSocket.empty() ? "unix" : "qmp",
                     destination.qmpSocket.empty() ? destination.unixSocket : destination.qmpSocket,
                     request->lifetime.count());
        reply(res, 201,
              {{"tunnel_id", transfer::tunnelIdText(*id)},
               {"expires_s", request->lifetime.count()},
               {"port", *port}});
      });
  server.Get("/v1/migrations/incoming", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
    reply(res, 200, ctx.transfers->incomingMigrationsJson());
  });
  server.Delete(
      "/v1/migrations/incoming/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
        if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
        std::string text = req.matches[1];
        auto id = transfer::parseTunnelId(text);
        if (!id) return replyError(res, 400, reasonFor(id.error()));
        if (!ctx.transfers->incomingMigrations().remove(*id))
          return replyError(res, 404, "no incoming migration registered as " + text);
        spdlog::info("event=migration_incoming_removed tunnel_id={}", transfer::tunnelIdText(*id));
        reply(res, 200, {{"tunnel_id", transfer::tunnelIdText(*id)}, {"state", "removed"}});
      });

  // Outgoing migrations this host drives as the source.
  server.Post("/v1/migrations", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
    auto request = parseMigrationRequest(req.body);
    if (!request) return replyError(res, 400, reasonFor(request.error()));
    MigrationStart start = ctx.transfers->migrations().start(*request);
    // Still starting when the API's deadline nears: GET /v1/migrations
    // shows whether it then runs or why it failed.
    if (start.stillStarting)
      return reply(res, 202, {{"id", *start.stillStarting}, {"state", "starting"}});
    if (!start.started) return replyError(res, migrationStartStatus(start.failure), start.message);
    nlohmann::json body{{"id", start.started->id},
                        {"mode", start.started->mode},
                        {"tunnel_id", transfer::tunnelIdText(start.started->tunnelId)}};
    if (!start.started->handOffNotOffered.empty())
      body["hand_off_not_offered"] = start.started->handOffNotOffered;
    reply(res, 201, body);
  });
  server.Get("/v1/migrations", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
    reply(res, 200, ctx.transfers->migrations().migrationsJson());
  });
  server.Delete("/v1/migrations/([^/]+)", [&ctx](const httplib::Request& req,
                                                 httplib::Response& res) {
    if (ctx.transfers == nullptr) return replyError(res, 503, kNoTransferEngine);
    auto id = parseMigrationId(std::string(req.matches[1]));
    if (!id) return replyError(res, 400, reasonFor(id.error()));
    switch (ctx.transfers->migrations().cancel(*id)) {
      case MigrationCancelOutcome::Cancelling:
        return reply(res, 200, {{"id", *id}, {"state", "cancelling"}});
      case MigrationCancelOutcome::Unknown:
        return replyError(res, 404, "no migration " + std::to_string(*id));
      case MigrationCancelOutcome::AlreadyFinished:
        return replyError(res, 409, "migration " + std::to_string(*id) + " has already finished");
    }
  });

  server.Get("/v1/facts", [&ctx](const httplib::Request& req, httplib::Response& res) {
    listKeys(ctx, Keyspace::Facts, req, res);
  });
  server.Get("/v1/facts/(.+)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    getKey(ctx, Keyspace::Facts, req, res);
  });
}

}  // namespace Atoll
