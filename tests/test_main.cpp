// main() of every test binary: GoogleTest, with the same OpenMP wait policy as the
// CLI so tests time and behave like production runs.
#include <gtest/gtest.h>

#include "common/sysinfo.h"

int main(int argc, char** argv) {
  sr::configure_process(argv);
  sr::set_threads(0);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
