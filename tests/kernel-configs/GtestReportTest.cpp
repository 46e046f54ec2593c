#include "kernel-configs/testvm/GtestReport.h"

#include <gtest/gtest.h>

namespace Atoll::testvm {
namespace {

// A report as gtest 1.12 writes it (--gtest_output=json), trimmed of the
// fields the parser does not read.
constexpr std::string_view kReport = R"({
  "tests": 6, "failures": 2, "disabled": 1, "name": "AllTests",
  "testsuites": [
    {
      "name": "Suite", "tests": 4, "failures": 1, "disabled": 1,
      "testsuite": [
        {"name": "Passes", "file": "t.cpp", "line": 2, "status": "RUN",
         "result": "COMPLETED", "classname": "Suite"},
        {"name": "Fails", "file": "t.cpp", "line": 3, "status": "RUN",
         "result": "COMPLETED", "classname": "Suite",
         "failures": [
           {"failure": "t.cpp:3\nExpected equality of these values:\n  1\n  2\none is not two",
            "type": ""}
         ]},
        {"name": "Skips", "file": "t.cpp", "line": 4, "status": "RUN",
         "result": "SKIPPED", "classname": "Suite"},
        {"name": "DISABLED_Off", "file": "t.cpp", "line": 5, "status": "NOTRUN",
         "result": "SUPPRESSED", "classname": "Suite"}
      ]
    },
    {
      "name": "Inst\/P", "tests": 2, "failures": 1,
      "testsuite": [
        {"name": "Param\/0", "value_param": "1", "status": "RUN", "result": "COMPLETED",
         "classname": "Inst\/P"},
        {"name": "Param\/1", "value_param": "3", "status": "RUN", "result": "COMPLETED",
         "classname": "Inst\/P",
         "failures": [{"failure": "t.cpp:7\nExpected: (GetParam()) < (2), actual: 3 vs 2",
                       "type": ""}]}
      ]
    },
    {
      "name": "NonTestSuiteFailure", "tests": 1, "failures": 1,
      "testsuite": [
        {"name": "", "status": "RUN", "result": "COMPLETED", "classname": "",
         "failures": [{"failure": "e.cpp:2\nFailed\nenv broken", "type": ""}]}
      ]
    }
  ]
})";

// The same binary's console output.
constexpr std::string_view kLog =
    "Running main() from ./googletest/src/gtest_main.cc\n"
    "[==========] Running 5 tests from 2 test suites.\n"
    "[ RUN      ] Suite.Passes\n"
    "hello from passes\n"
    "[       OK ] Suite.Passes (0 ms)\n"
    "[ RUN      ] Suite.Fails\n"
    "t.cpp:3: Failure\n"
    "one is not two\n"
    "[  FAILED  ] Suite.Fails (0 ms)\n"
    "[ RUN      ] Suite.Skips\n"
    "t.cpp:4: Skipped\n"
    "no node1\n"
    "[  SKIPPED ] Suite.Skips (0 ms)\n"
    "[ DISABLED ] Suite.DISABLED_Off\n"
    "[ RUN      ] Inst/P.Param/1\n"
    "t.cpp:7: Failure\n"
    "[  FAILED  ] Inst/P.Param/1, where GetParam() = 3 (0 ms)\n"
    "[  FAILED  ] 2 tests, listed below:\n"
    "[  FAILED  ] Suite.Fails\n";

TEST(GtestReportTest, ReadsEachCaseOutcome) {
  auto report = GtestReport::parse(kReport, "results/unit.json");
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->caseCount(), 6u);

  const auto* passes = report->find("Suite.Passes");
  ASSERT_NE(passes, nullptr);
  EXPECT_EQ(passes->outcome, CaseOutcome::kPassed);
  EXPECT_TRUE(passes->failures.empty());

  const auto* fails = report->find("Suite.Fails");
  ASSERT_NE(fails, nullptr);
  EXPECT_EQ(fails->outcome, CaseOutcome::kFailed);
  ASSERT_EQ(fails->failures.size(), 1u);
  EXPECT_NE(fails->failures[0].find("one is not two"), std::string::npos);

  const auto* skips = report->find("Suite.Skips");
  ASSERT_NE(skips, nullptr);
  EXPECT_EQ(skips->outcome, CaseOutcome::kSkipped);

  const auto* disabled = report->find("Suite.DISABLED_Off");
  ASSERT_NE(disabled, nullptr);
  EXPECT_EQ(disabled->outcome, CaseOutcome::kNotRun);

  const auto* param = report->find("Inst/P.Param/1");
  ASSERT_NE(param, nullptr);
  EXPECT_EQ(param->outcome, CaseOutcome::kFailed);
  EXPECT_EQ(report->find("Inst/P.Param/0")->outcome, CaseOutcome::kPassed);
}

TEST(GtestReportTest, CaseMissingFromReportIsNotFound) {
  auto report = GtestReport::parse(kReport, "results/unit.json");
  ASSERT_TRUE(report);
  EXPECT_EQ(report->find("Suite.NeverWritten"), nullptr);
  EXPECT_EQ(report->find("Suite"), nullptr);
  EXPECT_EQ(report->find("Suite.Pass"), nullptr);
}

TEST(GtestReportTest, KeepsFailuresOutsideTestsApart) {
  auto report = GtestReport::parse(kReport, "results/unit.json");
  ASSERT_TRUE(report);
  ASSERT_EQ(report->failuresOutsideTests().size(), 1u);
  EXPECT_NE(report->failuresOutsideTests()[0].find("env broken"), std::string::npos);
  EXPECT_EQ(report->find("NonTestSuiteFailure."), nullptr);
}

TEST(GtestReportTest, RejectsWhatIsNotAReport) {
  auto truncated = GtestReport::parse(kReport.substr(0, 200), "results/cut.json");
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().path, "results/cut.json");
  EXPECT_NE(truncated.error().detail.find("invalid JSON"), std::string::npos);

  auto noSuites = GtestReport::parse(R"({"tests": 0})", "results/x.json");
  ASSERT_FALSE(noSuites);
  EXPECT_NE(noSuites.error().detail.find("testsuites"), std::string::npos);

  auto unknownResult = GtestReport::parse(
      R"({"testsuites": [{"name": "S", "testsuite": [{"name": "T", "status": "RUN",
          "result": "EXPLODED"}]}]})",
      "results/y.json");
  ASSERT_FALSE(unknownResult);
  EXPECT_EQ(unknownResult.error().value, "EXPLODED");
}

TEST(GtestReportTest, CaseOutputSpansRunToVerdict) {
  EXPECT_EQ(caseOutput(kLog, "Suite.Passes"),
            "[ RUN      ] Suite.Passes\n"
            "hello from passes\n"
            "[       OK ] Suite.Passes (0 ms)\n");
  EXPECT_EQ(caseOutput(kLog, "Suite.Skips"),
            "[ RUN      ] Suite.Skips\n"
            "t.cpp:4: Skipped\n"
            "no node1\n"
            "[  SKIPPED ] Suite.Skips (0 ms)\n");
  EXPECT_EQ(caseOutput(kLog, "Inst/P.Param/1"),
            "[ RUN      ] Inst/P.Param/1\n"
            "t.cpp:7: Failure\n"
            "[  FAILED  ] Inst/P.Param/1, where GetParam() = 3 (0 ms)\n");
}

TEST(GtestReportTest, CaseOutputDoesNotConfuseNamePrefixes) {
  constexpr std::string_view log =
      "[ RUN      ] Suite.Pass\n"
      "short one\n"
      "[       OK ] Suite.Pass (0 ms)\n"
      "[ RUN      ] Suite.Passes\n"
      "[       OK ] Suite.Passes (1 ms)\n";
  EXPECT_EQ(caseOutput(log, "Suite.Pass"),
            "[ RUN      ] Suite.Pass\nshort one\n[       OK ] Suite.Pass (0 ms)\n");
}

TEST(GtestReportTest, CaseCutShortKeepsItsOutputToTheEnd) {
  constexpr std::string_view log =
      "[ RUN      ] Suite.Crashes\n"
      "about to fault\n";
  EXPECT_EQ(caseOutput(log, "Suite.Crashes"), "[ RUN      ] Suite.Crashes\nabout to fault\n");
  EXPECT_EQ(caseOutput(log, "Suite.NeverStarted"), "");
  EXPECT_EQ(caseOutput("", "Suite.Crashes"), "");
}

}  // namespace
}  // namespace Atoll::testvm
