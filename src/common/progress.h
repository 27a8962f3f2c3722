// Progress lines on stderr for long runs: "<label> i/N  <extra>  ETA 1m23s".
// Results never go here; they go to stdout or JSON.
#pragma once
#include <string>

namespace sr {

class Progress {
 public:
  Progress(std::string label, int total, bool enabled = true);
  // Lines only once `first_after` seconds have passed, then at most one every `every` seconds
  // (default: from the start, at most ~4 a second); the last step always, once lines have begun.
  Progress& pace(double first_after, double every);
  // Reports that `done` of `total` steps are finished; `extra` is appended verbatim.
  void update(int done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed() const;

 private:
  std::string label_;
  int total_;
  bool enabled_;
  double start_, last_print_ = -1, first_after_ = 0, every_ = 0.25;
};

std::string format_duration(double seconds);  // "42s", "3m05s", "1h02m"
std::string format_bytes(double bytes);       // "1.5 GiB"

}  // namespace sr
