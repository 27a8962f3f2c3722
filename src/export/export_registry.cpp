// The table of export formats: `--format` names -> writer functions.
#include <string>
#include <vector>

#include "common/error.h"
#include "export/export_job.h"

namespace sr {
namespace {

struct FormatRow {
  const char* name;
  void (*write)(const ExportJob&, const std::string&);
};

const std::vector<FormatRow>& formats() {
  static const std::vector<FormatRow> rows = {
      {"fake", export_fake},
  };
  return rows;
}

const FormatRow* find(const std::string& name) {
  for (const FormatRow& r : formats()) if (name == r.name) return &r;
  return nullptr;
}

std::string supported() {
  std::string s;
  for (const FormatRow& r : formats()) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

}  // namespace

void check_export_format(const std::string& format) {
  SR_CHECK(find(format), "--format ", format, " is not supported (supported: ", supported(), ")");
}

void export_model(const std::string& format, const ExportJob& job, const std::string& out_dir) {
  check_export_format(format);
  find(format)->write(job, out_dir);
}

}  // namespace sr
