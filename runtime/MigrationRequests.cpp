#include "runtime/MigrationRequests.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "migrate/transfer/Rate.h"
#include "runtime/ApiRequests.h"

namespace Atoll {

namespace {

Result<std::string> absolutePath(std::string_view request, std::string_view field,
                                 const nlohmann::json& value, std::string_view expected) {
  auto text = requestStringField(request, field, value);
  if (!text) return text.error();
  std::string path = std::move(*text);
  if (path.empty() || path.front() != '/' || path.back() == '/') {
    return requestFieldError(request, field, value,
                             "expected the absolute path of " + std::string(expected));
  }
  return path;
}

std::string fileKind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a socket";
}

// The destination QEMU must already listen there: its socket exists.
Result<void> expectSocket(std::string_view field, const nlohmann::json& value,
                          const std::string& path, std::string_view startedWith) {
  constexpr std::string_view kRequest = "incoming migration";
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    int error = errno;
    return requestFieldError(kRequest, field, value,
                             std::string(std::strerror(error)) +
                                 " (is the destination QEMU running with " +
                                 std::string(startedWith) + "?)");
  }
  if (!S_ISSOCK(info.st_mode)) {
    return requestFieldError(kRequest, field, value,
                             path + " is " + fileKind(info.st_mode) +
                                 ", not a socket (the destination " + "QEMU's " +
                                 std::string(startedWith) + ")");
  }
  return ok();
}

}  // namespace

Result<MigrationRequest> parseMigrationRequest(std::string_view body) {
  constexpr std::string_view kRequest = "migration request";
  auto document = parseJsonObjectBody(body, "POST /v1/migrations");
  if (!document) return document.error();
  static constexpr std::string_view kKnown =
      "qmp, peer, tunnel_id, channels, bwlimit, downtime_limit_ms, relay, timeout_s";
  MigrationRequest request;
  bool haveQmp = false, havePeer = false;
  for (const auto& [key, value] : document->items()) {
    if (key == "qmp") {
      auto path = absolutePath(kRequest, key, value, "the source QEMU's QMP socket");
      if (!path) return path.error();
      request.migration.qmpSocket = *path;
      haveQmp = true;
    } else if (key == "peer") {
      if (!value.is_string())
        return requestFieldError(kRequest, key, value, "expected \"HOST:PORT\"");
      auto peer = transfer::parseEndpoint(value.get<std::string>());
      if (!peer) return requestFieldError(kRequest, key, value, peer.error().detail);
      if (peer->port == 0) {
        return requestFieldError(kRequest, key, value, "the peer's port must not be 0");
      }
      request.migration.peer = *peer;
      havePeer = true;
    } else if (key == "tunnel_id") {
      if (!value.is_string()) {
        return requestFieldError(kRequest, key, value,
                                 "expected the hexadecimal id POST /v1/migrations/incoming gave");
      }
      auto id = transfer::parseTunnelId(value.get<std::string>());
      if (!id) return requestFieldError(kRequest, key, value, id.error().detail);
      request.migration.tunnelId = *id;
    } else if (key == "channels") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1 ||
          value.get<int64_t>() > transfer::kMaxMigrationChannels) {
        return requestFieldError(kRequest, key, value,
                                 "expected an integer from 1 to " +
                                     std::to_string(transfer::kMaxMigrationChannels) +
                                     " (above 1: QEMU multifd, relayed)");
      }
      request.migration.channels = static_cast<uint32_t>(value.get<int64_t>());
    } else if (key == "bwlimit") {
      uint64_t rate = 0;
      if (value.is_number_unsigned()) {
        rate = value.get<uint64_t>();
        if (rate >= transfer::kRateCeiling) {
          return requestFieldError(
              kRequest, key, value,
              "expected bytes per second below " + std::to_string(transfer::kRateCeiling));
        }
      } else if (value.is_string()) {
        auto parsed = transfer::parseRate(value.get<std::string>(), key);
        if (!parsed) return requestFieldError(kRequest, key, value, parsed.error().detail);
        rate = *parsed;
      } else {
        return requestFieldError(
            kRequest, key, value,
            "expected bytes per second: a positive integer or a string such as "
            "\"500M\", \"1G\"");
      }
      if (rate == 0) {
        return requestFieldError(
            kRequest, key, value,
            "QEMU needs a cap above 0 (leave the field out to keep QEMU's own)");
      }
      request.migration.bandwidth = rate;
    } else if (key == "downtime_limit_ms") {
      // nlohmann keeps negative integers and floats apart from unsigned ones,
      // so -5 and 50.5 fail the first test.
      if (!value.is_number_unsigned() || value.get<uint64_t>() < 1 ||
          value.get<uint64_t>() > transfer::kMaxDowntimeLimitMs) {
        return requestFieldError(kRequest, key, value,
                                 "expected whole milliseconds from 1 to " +
                                     std::to_string(transfer::kMaxDowntimeLimitMs) +
                                     " (leave the field out for the host's [transfer] "
                                     "downtime_limit_ms)");
      }
      request.migration.downtimeLimitMs = value.get<uint64_t>();
    } else if (key == "relay") {
      if (!value.is_boolean())
        return requestFieldError(kRequest, key, value, "expected true or false");
      request.migration.relay = value.get<bool>();
    } else if (key == "timeout_s") {
      if (!value.is_number() || !(value.get<double>() >= 0) ||
          value.get<double>() > kMaxMigrationTimeoutSeconds) {
        return requestFieldError(
            kRequest, key, value,
            "expected seconds from 0 (no timeout) to " +
                std::to_string(static_cast<int64_t>(kMaxMigrationTimeoutSeconds)));
      }
      // A timeout under half a millisecond is still one: 0 means none.
      const int64_t ms = std::llround(value.get<double>() * 1000);
      request.timeout =
          std::chrono::milliseconds(value.get<double>() > 0 ? std::max<int64_t>(ms, 1) : 0);
    } else {
      return Error::invalid(std::string(kRequest), "", key,
                            "unknown field (known fields: " + std::string(kKnown) + ")");
    }
  }
  if (!haveQmp) return Error::invalid(std::string(kRequest), "", "qmp", "required field missing");
  if (!havePeer) return Error::invalid(std::string(kRequest), "", "peer", "required field missing");
  return request;
}

Result<IncomingMigrationRequest> parseIncomingMigrationRequest(std::string_view body) {
  constexpr std::string_view kRequest = "incoming migration";
  auto document = parseJsonObjectBody(body, "POST /v1/migrations/incoming");
  if (!document) return document.error();
  static constexpr std::string_view kKnown = "qmp, unix, expires_s";
  IncomingMigrationRequest request;
  for (const auto& [key, value] : document->items()) {
    if (key == "qmp") {
      auto path = absolutePath(kRequest, key, value, "the destination QEMU's QMP socket");
      if (!path) return path.error();
      if (auto socket = expectSocket(key, value, *path, "-incoming defer and -qmp unix:" + *path);
          !socket) {
        return socket.error();
      }
      request.destination.qmpSocket = *path;
    } else if (key == "unix") {
      auto path = absolutePath(kRequest, key, value, "the destination QEMU's incoming socket");
      if (!path) return path.error();
      if (auto socket = expectSocket(key, value, *path, "-incoming unix:" + *path); !socket) {
        return socket.error();
      }
      request.destination.unixSocket = *path;
    } else if (key == "expires_s") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1 ||
          value.get<int64_t>() > kMaxIncomingLifetimeSeconds) {
        return requestFieldError(kRequest, key, value,
                                 "expected an integer from 1 to " +
                                     std::to_string(kMaxIncomingLifetimeSeconds) + " seconds");
      }
      request.lifetime = std::chrono::seconds(value.get<int64_t>());
    } else {
      return Error::invalid(std::string(kRequest), "", key,
                            "unknown field (known fields: " + std::string(kKnown) + ")");
    }
  }
  bool handOff = !request.destination.qmpSocket.empty();
  bool relay = !request.destination.unixSocket.empty();
  if (handOff == relay) {
    return Error::invalid(std::string(kRequest), "", handOff ? "qmp and unix" : "qmp or unix",
                          "give exactly one: \"qmp\" (hand-off, QEMU started with -incoming "
                          "defer) or \"unix\" (relay, QEMU started with -incoming unix:PATH)");
  }
  return request;
}

Result<uint64_t> parseMigrationId(std::string_view text) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id == 0) {
    return Error::invalid("parse", "migration id", std::string(text),
                          "expected a migration number from GET /v1/migrations");
  }
  return id;
}

}  // namespace Atoll
