// atoll_vm_case_result: the ctest test of one in-VM gtest case. The test VM
// has already run (ctest fixture vm.boot); this reads what the case's binary
// left in the results folder, prints the case's output and failures, and
// exits 0 (passed), 1 (failed or never ran) or 77 (skipped in the guest).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "kernel-configs/testvm/GtestReport.h"
#include "util/Fs.h"

namespace {

using Atoll::testvm::CaseOutcome;

// Matches SKIP_RETURN_CODE in VmCaseDiscovery.cmake.
constexpr int kExitPassed = 0;
constexpr int kExitFailed = 1;
constexpr int kExitSkipped = 77;

// Written by the guest init after the last binary.
constexpr const char* kFinishedMarker = "finished";
constexpr size_t kLogTailBytes = 4000;

std::string tail(const std::string& text, size_t bytes) {
  if (text.size() <= bytes) return text;
  return "[...]\n" + text.substr(text.size() - bytes);
}

int fail(const std::string& message) {
  std::printf("FAILED: %s\n", message.c_str());
  return kExitFailed;
}

int judge(const std::string& resultsDir, const std::string& binary, const std::string& fullName,
          const std::string& guestLog) {
  auto results = Atoll::Dir::open(resultsDir);
  if (!results) return fail("no results: " + results.error().message());
  if (!results->exists(kFinishedMarker)) {
    return fail("the test VM did not finish its run, so " + fullName +
                " has no result; see the output of vm.boot and " + guestLog);
  }
  std::string log = results->readFile(binary + ".log").value_or("");
  std::string exitStatus(Atoll::trim(results->readFile(binary + ".rc").value_or("(none)")));

  auto json = results->readFile(binary + ".json");
  if (!json) {
    std::string output = Atoll::testvm::caseOutput(log, fullName);
    std::printf("%s", output.empty() ? tail(log, kLogTailBytes).c_str() : output.c_str());
    return fail(binary + " exited with status " + exitStatus +
                " in the test VM without writing its report (" + json.error().message() + "), so " +
                fullName + " has no result");
  }
  auto report = Atoll::testvm::GtestReport::parse(*json, resultsDir + "/" + binary + ".json");
  std::string output = Atoll::testvm::caseOutput(log, fullName);
  if (!report) {
    // gtest 1.12 writes an unreadable report when something fails outside any
    // test; the log then says what.
    std::printf("%s", tail(log, kLogTailBytes).c_str());
    return fail(report.error().message() + " (exit status " + exitStatus + ")");
  }

  std::printf("%s", output.c_str());
  for (const auto& failure : report->failuresOutsideTests()) {
    std::printf("failure outside any test in %s:\n%s\n", binary.c_str(), failure.c_str());
  }
  const auto* result = report->find(fullName);
  if (result == nullptr) {
    return fail(fullName + " is not in " + binary + "'s report (exit status " + exitStatus +
                "): it did not run in the test VM");
  }
  // The log holds the failures in context; the report's copy is the fallback.
  if (output.empty()) {
    for (const auto& failure : result->failures) std::printf("%s\n", failure.c_str());
  }
  if (!report->failuresOutsideTests().empty()) {
    return fail(binary + " failed outside its tests in the test VM");
  }
  switch (result->outcome) {
    case CaseOutcome::kPassed:
      std::printf("%s passed in the test VM\n", fullName.c_str());
      return kExitPassed;
    case CaseOutcome::kSkipped:
      std::printf("%s skipped in the test VM\n", fullName.c_str());
      return kExitSkipped;
    case CaseOutcome::kFailed:
      return fail(fullName + " failed in the test VM");
    case CaseOutcome::kNotRun:
      break;
  }
  return fail(fullName + " did not run in the test VM");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Reports one in-VM gtest case's result from the test VM's results folder",
               "atoll_vm_case_result"};
  std::string resultsDir, binary, fullName, guestLog;
  app.add_option("--results", resultsDir, "Results folder written by the guest")->required();
  app.add_option("--binary", binary, "Name of the gtest binary that holds the case")->required();
  app.add_option("--case", fullName, "Suite.Test")->required();
  app.add_option("--guest-log", guestLog, "Guest console log, named in messages");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  int status = judge(resultsDir, binary, fullName, guestLog);
  std::fflush(stdout);
  return status;
}
