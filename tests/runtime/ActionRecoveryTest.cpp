// The daemon in-process: actions left in flight by a crash are handed to the
// subsystem that began them at the next start, which completes or rolls them
// back, and the outcome is journaled.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "runtime/Daemon.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;

// A subsystem whose host action is writing a file in two steps (temporary
// file, then rename), so a crash between the steps leaves a half-done action
// on a real filesystem.
class FileWriter : public Subsystem {
 public:
  std::string_view name() const override { return "file-writer"; }
  bool runsIn(Phase) const override { return false; }
  Result<void> runPhase(Phase, const TickContext&) override { return ok(); }

  // Begins the action and performs `steps` of its 2 steps (2 = done on the
  // host), without journaling the finish: the crash window.
  static Result<uint64_t> writeUnfinished(ActionLog& log, const std::string& path,
                                          const std::string& content, int steps) {
    auto id = log.begin("file-writer", "write", {{"path", path}, {"content", content}});
    if (!id) return id.error();
    if (steps >= 1) test::writeTextFile(path + ".tmp", content);
    if (steps >= 2) std::filesystem::rename(path + ".tmp", path);
    return *id;
  }

  Result<ActionOutcome> recover(const PendingAction& action) override {
    ++recovered;
    std::string path = action.params.at("path");
    std::string content = action.params.at("content");
    if (std::filesystem::exists(path) && test::readTextFile(path) == content)
      return ActionOutcome::Completed;
    std::filesystem::remove(path + ".tmp");
    return ActionOutcome::RolledBack;
  }

  int recovered = 0;
};

struct InProcessDaemon {
  std::unique_ptr<Daemon> daemon;
  std::shared_ptr<FileWriter> writer;
};

InProcessDaemon startDaemon(const test::TempDir& dir, bool withWriter = true) {
  DaemonConfig config = defaultConfig();
  config.socketPath = dir.file("api.sock");
  config.stateDirectory = dir.file("state");
  config.metricsEnabled = false;
  config.tick = 50ms;
  DaemonOptions options;
  options.handleSignals = false;
  InProcessDaemon out;
  out.writer = std::make_shared<FileWriter>();
  if (withWriter) options.extraSubsystems.emplace_back(out.writer, 10ms);
  auto daemon = Daemon::start(config, std::move(options));
  if (!daemon) throw std::runtime_error(daemon.error().message());
  out.daemon = std::move(*daemon);
  return out;
}

TEST(ActionRecovery, AHalfDoneActionIsRolledBack) {
  test::TempDir dir;
  std::string target = dir.file("target");
  {
    auto d = startDaemon(dir);
    ASSERT_TRUE(FileWriter::writeUnfinished(d.daemon->actions(), target, "v1", 1));
  }  // destroyed without finishing: the journal still says "in flight"
  ASSERT_TRUE(std::filesystem::exists(target + ".tmp"));

  auto d = startDaemon(dir);
  EXPECT_EQ(d.writer->recovered, 1);
  EXPECT_FALSE(std::filesystem::exists(target + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(target));
  EXPECT_TRUE(d.daemon->actions().pending().empty());
  EXPECT_EQ(d.daemon->status()["actions"]["finished"], 1);
  d.daemon.reset();
  // The outcome was journaled: a third start has nothing to recover.
  auto third = startDaemon(dir);
  EXPECT_EQ(third.writer->recovered, 0);
}

TEST(ActionRecovery, AnActionDoneOnTheHostIsCompleted) {
  test::TempDir dir;
  std::string target = dir.file("target");
  {
    auto d = startDaemon(dir);
    ASSERT_TRUE(FileWriter::writeUnfinished(d.daemon->actions(), target, "v2", 2));
  }
  auto d = startDaemon(dir);
  EXPECT_EQ(d.writer->recovered, 1);
  EXPECT_EQ(test::readTextFile(target), "v2");
  EXPECT_TRUE(d.daemon->actions().pending().empty());
}

TEST(ActionRecovery, AnActionWithoutItsSubsystemStaysInFlightAndIsReported) {
  test::TempDir dir;
  {
    auto d = startDaemon(dir);
    ASSERT_TRUE(FileWriter::writeUnfinished(d.daemon->actions(), dir.file("t"), "v", 1));
  }
  auto d = startDaemon(dir, /*withWriter=*/false);
  auto status = d.daemon->status();
  EXPECT_EQ(status["actions"]["in_flight"].size(), 1u);
  ASSERT_EQ(status["actions"]["unrecovered_at_start"].size(), 1u);
  EXPECT_NE(status["actions"]["unrecovered_at_start"][0].get<std::string>().find("file-writer"),
            std::string::npos);
}

TEST(DaemonInProcess, RunsTicksAndStopsOnRequest) {
  test::TempDir dir;
  auto d = startDaemon(dir);
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    d.daemon->requestReload();  // no file: ignored, reported
    std::this_thread::sleep_for(100ms);
    d.daemon->requestStop();
  });
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(d.daemon->run(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  stopper.join();
  auto status = d.daemon->status();
  EXPECT_GE(status["tick"]["count"].get<int>(), 4);  // 50 ms ticks for ~400 ms
  EXPECT_EQ(status["config"]["last_reload"]["result"], "ignored");
}

}  // namespace
}  // namespace Atoll
