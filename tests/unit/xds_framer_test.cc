// NDJSON framing: lines split across any pieces come out whole, limits hold, errors stick.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rdmesh/xds/ndjson_framer.h"

namespace rdmesh::xds {
namespace {

struct Collector {
  std::vector<std::string> lines;
  NdjsonFramer::OnMessage callback() {
    return [this](std::string_view line) {
      lines.emplace_back(line);
      return Status::ok();
    };
  }
};

TEST(NdjsonFramer, WholeLinesInOneFeed) {
  NdjsonFramer framer;
  Collector out;
  ASSERT_TRUE(framer.feed("{\"a\":1}\n{\"b\":2}\r\n\n  \n", out.callback()).isOk());
  EXPECT_EQ(out.lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_EQ(framer.bufferedBytes(), 0u);
  EXPECT_TRUE(framer.finish().isOk());
}

TEST(NdjsonFramer, EverySplitPointGivesTheSameLines) {
  const std::string stream = "{\"first\":true}\n{\"second\":[1,2,3]}\n{\"third\":\"x\"}\n";
  for (size_t split = 0; split <= stream.size(); ++split) {
    NdjsonFramer framer;
    Collector out;
    ASSERT_TRUE(framer.feed(std::string_view(stream).substr(0, split), out.callback()).isOk());
    ASSERT_TRUE(framer.feed(std::string_view(stream).substr(split), out.callback()).isOk());
    EXPECT_EQ(out.lines.size(), 3u) << "split at " << split;
    EXPECT_EQ(out.lines.back(), "{\"third\":\"x\"}");
  }
}

TEST(NdjsonFramer, ByteAtATime) {
  const std::string stream = "{\"k\":\"v\"}\n{\"k\":\"w\"}\n";
  NdjsonFramer framer;
  Collector out;
  for (char c : stream) ASSERT_TRUE(framer.feed(std::string_view(&c, 1), out.callback()).isOk());
  EXPECT_EQ(out.lines, (std::vector<std::string>{"{\"k\":\"v\"}", "{\"k\":\"w\"}"}));
}

TEST(NdjsonFramer, LineAtTheLimitPassesOneOverFails) {
  NdjsonFramer framer(16);
  Collector out;
  ASSERT_TRUE(framer.feed(std::string(16, 'x') + "\n", out.callback()).isOk());
  ASSERT_EQ(out.lines.size(), 1u);
  Status status = framer.feed(std::string(17, 'y') + "\n", out.callback());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("over the 16-byte limit"), std::string::npos) << status.message();
  EXPECT_EQ(out.lines.size(), 1u);
}

TEST(NdjsonFramer, UnterminatedHugeLineFailsWithoutBufferingIt) {
  NdjsonFramer framer(1024);
  Collector out;
  ASSERT_TRUE(framer.feed(std::string(1000, 'x'), out.callback()).isOk());
  Status status = framer.feed(std::string(1000, 'x'), out.callback());
  EXPECT_FALSE(status.isOk());
  EXPECT_EQ(framer.bufferedBytes(), 0u);
  // The error sticks: later (valid) input is refused too.
  EXPECT_FALSE(framer.feed("{}\n", out.callback()).isOk());
  EXPECT_TRUE(out.lines.empty());
  EXPECT_TRUE(framer.failed());
}

TEST(NdjsonFramer, CallbackErrorStopsFraming) {
  NdjsonFramer framer;
  int calls = 0;
  Status status = framer.feed("a\nb\nc\n", [&](std::string_view line) {
    ++calls;
    return line == "b" ? invalidArgument("no b") : Status::ok();
  });
  EXPECT_EQ(status.message(), "no b");
  EXPECT_EQ(calls, 2);
}

TEST(NdjsonFramer, FinishReportsACutOffMessage) {
  NdjsonFramer framer;
  Collector out;
  ASSERT_TRUE(framer.feed("{\"partial\":", out.callback()).isOk());
  Status status = framer.finish();
  EXPECT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("ended inside a message"), std::string::npos);
}

TEST(NdjsonFramer, ToLineAppendsNewline) {
  EXPECT_EQ(toLine("{}"), "{}\n");
}

}  // namespace
}  // namespace rdmesh::xds
