#include "server/reasoning_splitter.h"

#include <gtest/gtest.h>

namespace tandem::server {

namespace {
ReasoningSplitter::Delta feed(ReasoningSplitter& s, const std::vector<std::string>& pieces) {
  ReasoningSplitter::Delta all;
  for (const auto& p : pieces) {
    auto d = s.push(p);
    all.reasoning += d.reasoning;
    all.content += d.content;
  }
  auto d = s.finish();
  all.reasoning += d.reasoning;
  all.content += d.content;
  return all;
}
}  // namespace

TEST(ReasoningSplitter, ForcedThinkSplitsAtTheClosingTagEvenWhenSplitAcrossPieces) {
  ReasoningSplitter s(true);
  auto d = feed(s, {"let me ", "think</", "thi", "nk>\n\nThe answer", " is 4."});
  EXPECT_EQ(d.reasoning, "let me think");
  EXPECT_EQ(d.content, "\n\nThe answer is 4.");
}

TEST(ReasoningSplitter, OutputThatOpensAThinkBlock) {
  ReasoningSplitter s(false);
  auto d = feed(s, {"<thi", "nk>hmm</think>", "yes"});
  EXPECT_EQ(d.reasoning, "hmm");
  EXPECT_EQ(d.content, "yes");
}

TEST(ReasoningSplitter, PlainOutputIsAllContent) {
  ReasoningSplitter s(false);
  auto d = feed(s, {"<b>", "hello"});
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "<b>hello");
}

TEST(ReasoningSplitter, UnfinishedThinkingStaysReasoning) {
  ReasoningSplitter s(true);
  auto d = feed(s, {"still </thi"});
  EXPECT_EQ(d.reasoning, "still </thi");
  EXPECT_EQ(d.content, "");
}

TEST(ReasoningSplitter, NothingIsEmittedWhileATagIsUndecided) {
  ReasoningSplitter s(true);
  EXPECT_EQ(s.push("abc</th").reasoning, "abc");
  EXPECT_EQ(s.push("ink>x").content, "x");
}

}  // namespace tandem::server
