#include "bpf/collector/CgroupReader.h"

#include <fcntl.h>

#include <cerrno>

namespace Atoll::telemetry {

namespace {

// A missing file is an absent signal, not an error.
Result<UniqueFd> openIfPresent(const Dir& dir, std::string_view name) {
  auto fd = dir.openFile(name, O_RDONLY | O_CLOEXEC);
  if (fd) return std::move(*fd);
  if (fd.error().errnum == ENOENT) return UniqueFd();
  return fd.error();
}

std::string fileOf(const std::string& dir, std::string_view name) {
  return dir + "/" + std::string(name);
}

}  // namespace

Result<CgroupReader> CgroupReader::open(const Dir& cgroup, bool readMemoryStat) {
  CgroupReader reader;
  reader.path_ = cgroup.path();
  struct Slot {
    std::string_view name;
    UniqueFd* fd;
  };
  Slot slots[] = {{kCpuStatFile, &reader.cpuStat_},
                  {kMemoryCurrentFile, &reader.memoryCurrent_},
                  {kMemoryStatFile, &reader.memoryStat_},
                  {kCpuPressureFile, &reader.cpuPressure_},
                  {kMemoryPressureFile, &reader.memoryPressure_},
                  {kIoPressureFile, &reader.ioPressure_}};
  for (Slot& slot : slots) {
    if (!readMemoryStat && slot.name == kMemoryStatFile) continue;
    auto fd = openIfPresent(cgroup, slot.name);
    if (!fd) return fd.error();
    *slot.fd = std::move(*fd);
  }
  return reader;
}

Result<CpuStat> CgroupReader::readCpuStat() const {
  std::string path = fileOf(path_, kCpuStatFile);
  if (!cpuStat_.valid()) return Error::fromErrno("open", path, ENOENT);
  auto text = preadAll(cpuStat_.get(), path);
  if (!text) return text.error();
  return parseCpuStat(*text, path);
}

Result<CgroupReading> CgroupReader::read() const {
  CgroupReading reading;
  if (cpuStat_.valid()) {
    auto cpu = readCpuStat();
    if (!cpu) return cpu.error();
    reading.cpu = *cpu;
  }
  if (memoryCurrent_.valid()) {
    std::string path = fileOf(path_, kMemoryCurrentFile);
    auto text = preadAll(memoryCurrent_.get(), path);
    if (!text) return text.error();
    auto value = parseSingleValue(*text, path);
    if (!value) return value.error();
    reading.memoryCurrent = *value;
  }
  if (memoryStat_.valid()) {
    std::string path = fileOf(path_, kMemoryStatFile);
    auto text = preadAll(memoryStat_.get(), path);
    if (!text) return text.error();
    auto values = parseKeyValues(*text, path);
    if (!values) return values.error();
    reading.memoryStat = std::move(*values);
  }
  struct PressureSlot {
    const UniqueFd* fd;
    std::string_view name;
    std::optional<Pressure>* out;
  };
  PressureSlot pressures[] = {{&cpuPressure_, kCpuPressureFile, &reading.cpuPressure},
                              {&memoryPressure_, kMemoryPressureFile, &reading.memoryPressure},
                              {&ioPressure_, kIoPressureFile, &reading.ioPressure}};
  for (const PressureSlot& slot : pressures) {
    if (!slot.fd->valid()) continue;
    std::string path = fileOf(path_, slot.name);
    auto text = preadAll(slot.fd->get(), path);
    if (!text) return text.error();
    // PSI can be disabled at boot (psi=0): the file exists but reads fail
    // with EOPNOTSUPP, handled above as an error; empty text is absent.
    if (trim(*text).empty()) continue;
    auto pressure = parsePressure(*text, path);
    if (!pressure) return pressure.error();
    *slot.out = *pressure;
  }
  return reading;
}

}  // namespace Atoll::telemetry
