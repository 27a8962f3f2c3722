#include "common/progress.h"

#include <cstdio>

#include "common/sysinfo.h"

namespace sr {

Progress::Progress(std::string label, int total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), start_(now_seconds()) {}

double Progress::elapsed() const { return now_seconds() - start_; }

Progress& Progress::pace(double first_after, double every) {
  first_after_ = first_after;
  every_ = every;
  return *this;
}

void Progress::update(int done, const std::string& extra) {
  if (!enabled_) return;
  double t = elapsed();
  if (t < first_after_) return;
  if (done < total_ && last_print_ >= 0 && t - last_print_ < every_) return;
  last_print_ = t;
  std::string eta = "";
  if (done > 0 && done < total_) eta = "  ETA " + format_duration(t / done * (total_ - done));
  std::fprintf(stderr, "%s %d/%d%s%s%s\n", label_.c_str(), done, total_, extra.empty() ? "" : "  ",
               extra.c_str(), eta.c_str());
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  if (!enabled_) return;
  std::fprintf(stderr, "%s done in %s%s%s\n", label_.c_str(), format_duration(elapsed()).c_str(),
               extra.empty() ? "" : "  ", extra.c_str());
}

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) { b /= 1024; ++u; }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

}  // namespace sr
