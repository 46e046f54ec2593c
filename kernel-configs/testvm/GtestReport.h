#pragma once
// What one gtest binary reported from inside the test VM, read back on the
// host: the verdict and failure messages of each case from its JSON report
// (--gtest_output=json), and each case's own lines from its console log.
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll::testvm {

enum class CaseOutcome { kPassed, kFailed, kSkipped, kNotRun };

std::string_view outcomeName(CaseOutcome outcome);

struct CaseResult {
  CaseOutcome outcome = CaseOutcome::kNotRun;
  // "file:line\nmessage" for each failed assertion, in report order.
  std::vector<std::string> failures;
};

class GtestReport {
 public:
  // Parses the text of a JSON report; `path` names it in errors.
  static Result<GtestReport> parse(std::string_view json, const std::string& path);

  // The case "Suite.Test", or nullptr when the report does not hold it.
  const CaseResult* find(std::string_view fullName) const;
  // Failures raised outside any test (a global environment's set-up, for
  // example); gtest reports them under a pseudo suite.
  const std::vector<std::string>& failuresOutsideTests() const { return outsideFailures_; }
  size_t caseCount() const { return cases_.size(); }

 private:
  std::map<std::string, CaseResult, std::less<>> cases_;
  std::vector<std::string> outsideFailures_;
};

// The lines a gtest binary printed for one case: from its "[ RUN      ]" line
// through its "[       OK ]", "[  FAILED  ]" or "[  SKIPPED ]" line. A case
// cut short (crash, timeout) yields everything up to the end of the log; a
// case that never started yields an empty string.
std::string caseOutput(std::string_view log, std::string_view fullName);

}  // namespace Atoll::testvm
