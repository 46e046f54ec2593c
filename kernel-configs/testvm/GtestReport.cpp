#include "kernel-configs/testvm/GtestReport.h"

#include <nlohmann/json.hpp>

namespace Atoll::testvm {

namespace {

// gtest's name for the pseudo suite holding failures outside any test.
constexpr std::string_view kOutsideTestsSuite = "NonTestSuiteFailure";

// gtest's console markers (gtest.cc, PrettyUnitTestResultPrinter).
constexpr std::string_view kRunMarker = "[ RUN      ] ";
constexpr std::string_view kEndMarkers[] = {"[       OK ] ", "[  FAILED  ] ", "[  SKIPPED ] "};

Error malformed(const std::string& path, std::string value, std::string detail) {
  return Error::invalid("parse", path, std::move(value), "not a gtest JSON report: " + detail);
}

std::string stringField(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

Result<CaseOutcome> outcomeOf(const nlohmann::json& testcase, bool failed, const std::string& path,
                              const std::string& name) {
  std::string status = stringField(testcase, "status");
  std::string result = stringField(testcase, "result");
  if (status == "NOTRUN" || result == "SUPPRESSED") return CaseOutcome::kNotRun;
  if (failed) return CaseOutcome::kFailed;
  if (result == "SKIPPED") return CaseOutcome::kSkipped;
  if (result == "COMPLETED") return CaseOutcome::kPassed;
  return malformed(path, result, "case " + name + " has no known result");
}

// True when `line` is `marker` followed by the case name and then nothing, a
// space (the timing, "(12 ms)") or a comma (", where GetParam() = 3").
bool isMarkerLine(std::string_view line, std::string_view marker, std::string_view fullName) {
  if (line.substr(0, marker.size()) != marker) return false;
  std::string_view rest = line.substr(marker.size());
  if (rest.substr(0, fullName.size()) != fullName) return false;
  rest.remove_prefix(fullName.size());
  return rest.empty() || rest.front() == ' ' || rest.front() == ',' || rest.front() == '\r';
}

}  // namespace

std::string_view outcomeName(CaseOutcome outcome) {
  switch (outcome) {
    case CaseOutcome::kPassed:
      return "passed";
    case CaseOutcome::kFailed:
      return "failed";
    case CaseOutcome::kSkipped:
      return "skipped";
    case CaseOutcome::kNotRun:
      return "not run";
  }
  return "unknown";
}

Result<GtestReport> GtestReport::parse(std::string_view json, const std::string& path) {
  nlohmann::json root = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return malformed(path, std::string(json.substr(0, 80)), "invalid JSON");
  }
  auto suites = root.find("testsuites");
  if (!root.is_object() || suites == root.end() || !suites->is_array()) {
    return malformed(path, std::string(json.substr(0, 80)), "no \"testsuites\" array");
  }
  GtestReport report;
  for (const auto& suite : *suites) {
    std::string suiteName = stringField(suite, "name");
    auto cases = suite.find("testsuite");
    if (suiteName.empty() || cases == suite.end() || !cases->is_array()) {
      return malformed(path, suite.dump().substr(0, 80), "a suite without name or cases");
    }
    for (const auto& testcase : *cases) {
      std::string caseName = stringField(testcase, "name");
      std::vector<std::string> failures;
      if (auto list = testcase.find("failures"); list != testcase.end() && list->is_array()) {
        for (const auto& failure : *list) failures.push_back(stringField(failure, "failure"));
      }
      if (suiteName == kOutsideTestsSuite && caseName.empty()) {
        report.outsideFailures_.insert(report.outsideFailures_.end(), failures.begin(),
                                       failures.end());
        continue;
      }
      if (caseName.empty()) {
        return malformed(path, testcase.dump().substr(0, 80), "a case without name");
      }
      std::string fullName = suiteName + "." + caseName;
      auto outcome = outcomeOf(testcase, !failures.empty(), path, fullName);
      if (!outcome) return outcome.error();
      report.cases_[fullName] = CaseResult{*outcome, std::move(failures)};
    }
  }
  return report;
}

const CaseResult* GtestReport::find(std::string_view fullName) const {
  auto it = cases_.find(fullName);
  return it == cases_.end() ? nullptr : &it->second;
}

std::string caseOutput(std::string_view log, std::string_view fullName) {
  std::string out;
  bool inside = false;
  while (!log.empty()) {
    size_t end = log.find('\n');
    std::string_view line = log.substr(0, end);
    log.remove_prefix(end == std::string_view::npos ? log.size() : end + 1);
    if (!inside) {
      inside = isMarkerLine(line, kRunMarker, fullName);
      if (!inside) continue;
    }
    out.append(line).push_back('\n');
    for (std::string_view marker : kEndMarkers) {
      if (isMarkerLine(line, marker, fullName)) return out;
    }
  }
  return out;
}

}  // namespace Atoll::testvm
