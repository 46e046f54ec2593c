#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "forecast/Replay.h"
#include "forecast/ReplayInput.h"
#include "forecast/ReplayOutput.h"
#include "forecast/SeriesModel.h"

namespace Atoll::forecast {
namespace {

std::string csvOf(const std::vector<double>& values) {
  std::string text = "timestamp,value\n";
  for (size_t i = 0; i < values.size(); ++i)
    text += std::to_string(1000 + 300 * i) + "," + std::to_string(values[i]) + "\n";
  return text;
}

InputError errorOf(const std::string& content) {
  auto parsed = parseReplayCsv(content, "dir/vm1.csv");
  EXPECT_FALSE(parsed);
  return parsed ? InputError{} : parsed.error();
}

TEST(ReplayInput, ParsesNameTimestampsAndValues) {
  auto parsed = parseReplayCsv("timestamp,value\r\n0,1.5\r\n300,2\n600,0\n", "/x/vm-7.csv");
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed.value().name, "vm-7");
  EXPECT_EQ(parsed.value().values, (std::vector<double>{1.5, 2, 0}));
}

TEST(ReplayInput, AcceptsIso8601Timestamps) {
  double seconds = 0;
  ASSERT_TRUE(parseTimestamp("2013-07-01T00:05:00Z", seconds));
  EXPECT_DOUBLE_EQ(seconds, 1372637100.0);
  ASSERT_TRUE(parseTimestamp("2013-07-01 00:05", seconds));
  EXPECT_DOUBLE_EQ(seconds, 1372637100.0);
  EXPECT_FALSE(parseTimestamp("2013-13-01 00:05", seconds));
  EXPECT_FALSE(parseTimestamp("yesterday", seconds));
}

TEST(ReplayInput, RejectsBadInputNamingFileLineAndValue) {
  InputError e = errorOf("time,value\n0,1\n");
  EXPECT_EQ(e.line, 1u);
  EXPECT_NE(e.message().find("dir/vm1.csv:1"), std::string::npos);
  EXPECT_NE(e.message().find("time,value"), std::string::npos);

  e = errorOf("timestamp,value\n0,1\n300,abc\n");
  EXPECT_EQ(e.line, 3u);
  EXPECT_EQ(e.value, "abc");
  e = errorOf("timestamp,value\n0,nan\n");
  EXPECT_EQ(e.value, "nan");
  e = errorOf("timestamp,value\n0,inf\n");
  EXPECT_EQ(e.value, "inf");
  e = errorOf("timestamp,value\n0,-3\n");
  EXPECT_EQ(e.value, "-3");
  e = errorOf("timestamp,value\n0,1\n300,1\n300,2\n");
  EXPECT_EQ(e.line, 4u);
  EXPECT_NE(e.reason.find("duplicated"), std::string::npos);
  e = errorOf("timestamp,value\n0,1\n300,1\n200,2\n");
  EXPECT_NE(e.reason.find("backwards"), std::string::npos);
  e = errorOf("timestamp,value\n0,1\n300,1\n90000,2\n");
  EXPECT_NE(e.reason.find("gap"), std::string::npos);
  EXPECT_EQ(e.value, "90000");
  e = errorOf("timestamp,value\n0,1,2\n");
  EXPECT_EQ(e.line, 2u);
  e = errorOf("");
  EXPECT_NE(e.reason.find("header"), std::string::npos);
}

TEST(Replay, WritesOneRowPerOriginAndHorizon) {
  auto series = parseReplayCsv(csvOf({1, 2, 3, 4, 5}), "s.csv");
  ASSERT_TRUE(series);
  const std::vector<int> horizons{1, 12};
  const ModelShape shape(replayModelConfig(horizons));
  std::string out;
  replaySeries(series.value(), shape, horizons, out);
  std::istringstream lines(out);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    const int origin = rows / 2;
    const int h = horizons[rows % 2];
    EXPECT_EQ(line.rfind("s," + std::to_string(origin) + "," + std::to_string(h) + ",", 0), 0u)
        << line;
    ++rows;
  }
  EXPECT_EQ(rows, 10);
}

TEST(Replay, NeverUsesARowAfterTheOrigin) {
  std::vector<double> values;
  for (int i = 0; i < 800; ++i) values.push_back(10 + (i * 37) % 23);
  std::vector<double> altered = values;
  for (size_t i = 500; i < altered.size(); ++i) altered[i] = 1000;
  const std::vector<int> horizons{1, 12, 72};
  const ModelShape shape(replayModelConfig(horizons));
  std::string a, b;
  replaySeries(parseReplayCsv(csvOf(values), "s.csv").value(), shape, horizons, a);
  replaySeries(parseReplayCsv(csvOf(altered), "s.csv").value(), shape, horizons, b);
  // Rows of origins 0..499 must be identical; origin 500 sees the change.
  const size_t prefix = a.find("\ns,500,");
  ASSERT_NE(prefix, std::string::npos);
  EXPECT_EQ(a.substr(0, prefix), b.substr(0, prefix));
  EXPECT_NE(a, b);
}

TEST(Replay, HorizonListParsing) {
  auto ok = parseHorizonList("1,12,72");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok.value(), (std::vector<int>{1, 12, 72}));
  EXPECT_FALSE(parseHorizonList("1,,3"));
  EXPECT_FALSE(parseHorizonList("0"));
  auto bad = parseHorizonList("1,x");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().value, "x");
}

TEST(ReplayOutput, ReadsBackAtTargetRows) {
  const std::string content =
      "series,origin_index,horizon,p50,p95\n"
      "a,0,1,1,2\na,0,12,5,6\na,1,1,3,4\nb,0,1,9,9\n";
  auto path = parseReplayOutput(content, "r.csv", "a", 1);
  ASSERT_TRUE(path);
  ASSERT_EQ(path.value().p50.size(), 3u);
  EXPECT_TRUE(std::isnan(path.value().p50[0]));
  EXPECT_EQ(path.value().p50[1], 1);
  EXPECT_EQ(path.value().p95[2], 4);
  EXPECT_FALSE(parseReplayOutput(content, "r.csv", "c", 1));
  EXPECT_FALSE(parseReplayOutput("bad header\n", "r.csv", "a", 1));
}

}  // namespace
}  // namespace Atoll::forecast
