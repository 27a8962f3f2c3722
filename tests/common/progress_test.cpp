// Progress lines: the default pace prints from the first step and always the last; pace()
// holds lines back until `first_after` seconds and then spaces them `every` seconds apart.
#include "common/progress.h"

#include <gtest/gtest.h>

#include <string>

namespace sr {
namespace {

int lines(const std::string& s) {
  int n = 0;
  for (char ch : s) n += ch == '\n';
  return n;
}

TEST(Progress, DefaultPacePrintsTheFirstAndLastSteps) {
  testing::internal::CaptureStderr();
  Progress p("pass", 100);
  for (int i = 1; i <= 100; ++i) p.update(i);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.rfind("pass 1/100", 0), 0u) << err;
  EXPECT_NE(err.find("pass 100/100\n"), std::string::npos) << err;
  EXPECT_LE(lines(err), 3) << err;  // ~4 a second at most: the first and last (and one if the loop was slow)
}

TEST(Progress, PaceHoldsLinesBackUntilFirstAfter) {
  testing::internal::CaptureStderr();
  Progress p("pass", 10);
  p.pace(3600, 30);  // a pass that ends within the hour prints nothing, its last step included
  for (int i = 1; i <= 10; ++i) p.update(i);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  testing::internal::CaptureStderr();
  Progress q("pass", 10);
  q.pace(0, 3600);  // from the start: the first step, then nothing for an hour but the last
  for (int i = 1; i <= 10; ++i) q.update(i);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(lines(err), 2) << err;
  EXPECT_EQ(err.rfind("pass 1/10", 0), 0u) << err;
  EXPECT_NE(err.find("pass 10/10\n"), std::string::npos) << err;
}

TEST(Progress, DisabledPrintsNothing) {
  testing::internal::CaptureStderr();
  Progress p("pass", 2, false);
  p.update(1);
  p.update(2);
  p.finish();
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace sr
