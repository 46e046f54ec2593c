#include "migrate/qemu/MigrationStatus.h"

namespace Atoll::qemu {

namespace {

Result<uint64_t> unsignedField(const nlohmann::json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end()) return uint64_t{0};
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0)) {
    return Error::invalid("parse", "query-migrate", it->dump(),
                          std::string("field '") + name + "' is not a non-negative integer");
  }
  return it->get<uint64_t>();
}

}  // namespace

double MigrationStatus::progress() const {
  if (succeeded()) return 1.0;
  if (ramTotalBytes == 0) return 0.0;
  uint64_t done = ramTotalBytes > ramRemainingBytes ? ramTotalBytes - ramRemainingBytes : 0;
  return static_cast<double>(done) / static_cast<double>(ramTotalBytes);
}

double MigrationStatus::etaSeconds() const {
  if (succeeded()) return 0.0;
  if (ramMbps <= 0) return -1.0;
  return static_cast<double>(ramRemainingBytes) * 8.0 / (ramMbps * 1e6);
}

Result<MigrationStatus> parseQueryMigrate(const nlohmann::json& reply) {
  if (!reply.is_object()) {
    return Error::invalid("parse", "query-migrate", reply.dump(), "reply is not an object");
  }
  MigrationStatus out;
  // Before any migration QEMU answers an empty object.
  auto status = reply.find("status");
  if (status == reply.end()) {
    out.status = "none";
  } else if (!status->is_string()) {
    return Error::invalid("parse", "query-migrate", status->dump(), "'status' is not a string");
  } else {
    out.status = status->get<std::string>();
  }
  struct Field {
    const char* name;
    uint64_t* target;
  };
  for (Field f : {Field{"total-time", &out.totalTimeMs}, Field{"downtime", &out.downtimeMs},
                  Field{"expected-downtime", &out.expectedDowntimeMs},
                  Field{"setup-time", &out.setupTimeMs}}) {
    auto v = unsignedField(reply, f.name);
    if (!v) return v.error();
    *f.target = *v;
  }
  if (auto ram = reply.find("ram"); ram != reply.end()) {
    if (!ram->is_object()) {
      return Error::invalid("parse", "query-migrate", ram->dump(), "'ram' is not an object");
    }
    for (Field f :
         {Field{"transferred", &out.ramTransferredBytes},
          Field{"remaining", &out.ramRemainingBytes}, Field{"total", &out.ramTotalBytes},
          Field{"dirty-sync-count", &out.dirtySyncCount},
          Field{"dirty-pages-rate", &out.dirtyPagesRate}, Field{"page-size", &out.pageSize}}) {
      auto v = unsignedField(*ram, f.name);
      if (!v) return v.error();
      *f.target = *v;
    }
    if (auto mbps = ram->find("mbps"); mbps != ram->end()) {
      if (!mbps->is_number()) {
        return Error::invalid("parse", "query-migrate", mbps->dump(), "'ram.mbps' is not a number");
      }
      out.ramMbps = mbps->get<double>();
    }
  }
  if (auto desc = reply.find("error-desc"); desc != reply.end() && desc->is_string()) {
    out.errorDescription = desc->get<std::string>();
  }
  if (out.status == "completed") {
    if (!reply.contains("total-time")) {
      // A QEMU that itself arrived by migration answers with its incoming
      // migration's state while it has no outgoing one (QEMU fills the
      // reply from the destination's state first and the source's only
      // once the source has one): "completed" and nothing else. It says
      // nothing about a migration from this QEMU.
      out.status = "none";
    } else if (out.totalTimeMs == 0) {
      // QEMU's migration thread marks the migration completed before it
      // stores its total time and downtime; a query in between reads both
      // as 0. The figures are there at the next query.
      out.status = kCompletingStatus;
    }
  }
  return out;
}

}  // namespace Atoll::qemu
