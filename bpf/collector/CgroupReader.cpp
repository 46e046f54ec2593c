#include "bpf/collector/CgroupReader.h"

#include <fcntl.h>
#include <unistd.h>

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

Result<std::string_view> CgroupReader::readText(const UniqueFd& fd, std::string_view name) const {
  // cgroupfs files are generated whole on a read at offset 0; one pread
  // shorter than the buffer has all of it.
  thread_local char buffer[16384];
  thread_local std::string spill;
  for (;;) {
    ssize_t n = ::pread(fd.get(), buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::fromErrno("read", fileOf(path_, name), errno);
    if (static_cast<size_t>(n) < sizeof buffer)
      return std::string_view(buffer, static_cast<size_t>(n));
    break;
  }
  // Larger than the buffer (a huge memory.stat): read it all.
  auto all = preadAll(fd.get(), fileOf(path_, name));
  if (!all) return all.error();
  spill = std::move(*all);
  return std::string_view(spill);
}

Result<CpuStat> CgroupReader::readCpuStat() const {
  if (!cpuStat_.valid()) return Error::fromErrno("open", fileOf(path_, kCpuStatFile), ENOENT);
  auto text = readText(cpuStat_, kCpuStatFile);
  if (!text) return text.error();
  auto stat = parseCpuStat(*text, std::string());
  if (!stat) {
    Error error = stat.error();
    error.path = fileOf(path_, kCpuStatFile);
    return error;
  }
  return stat;
}

Result<CgroupReading> CgroupReader::read(bool withSlowSignals, bool withCpuStat) const {
  CgroupReading reading;
  if (withCpuStat && cpuStat_.valid()) {
    auto cpu = readCpuStat();
    if (!cpu) return cpu.error();
    reading.cpu = *cpu;
  }
  if (memoryCurrent_.valid()) {
    auto text = readText(memoryCurrent_, kMemoryCurrentFile);
    if (!text) return text.error();
    auto value = parseSingleValue(*text, fileOf(path_, kMemoryCurrentFile));
    if (!value) return value.error();
    reading.memoryCurrent = *value;
  }
  if (!withSlowSignals) return reading;
  if (memoryStat_.valid()) {
    std::string path = fileOf(path_, kMemoryStatFile);
    auto text = readText(memoryStat_, kMemoryStatFile);
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
    auto text = readText(*slot.fd, slot.name);
    if (!text) return text.error();
    // PSI can be disabled at boot (psi=0): the file exists but reads fail
    // with EOPNOTSUPP, handled above as an error; empty text is absent.
    if (trim(*text).empty()) continue;
    auto pressure = parsePressure(*text, fileOf(path_, slot.name));
    if (!pressure) return pressure.error();
    *slot.out = *pressure;
  }
  return reading;
}

}  // namespace Atoll::telemetry
