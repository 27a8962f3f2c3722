// The table of export formats: `--format` names -> writer functions.
#include <string>
#include <vector>

#include "common/error.h"
#include "export/export_job.h"
#include "export/packed_export.h"

namespace sr {
namespace {

struct FormatRow {
  const char* name;
  void (*write)(const ExportJob&, const std::string&);
  void (*check_plan)(const LayerPlan&, bool calibrated) = nullptr;  // nullptr: stores any plan
};

const std::vector<FormatRow>& formats() {
  static const std::vector<FormatRow> rows = {
      {"fake", export_fake},
      {"auto_round", export_auto_round, check_auto_round_plan},
      {"auto_gptq", export_auto_gptq, check_auto_gptq_plan},
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

void check_export_plan(const std::string& format, const LayerPlan& plan, bool calibrated) {
  check_export_format(format);
  if (find(format)->check_plan) find(format)->check_plan(plan, calibrated);
}

void export_model(const std::string& format, const ExportJob& job, const std::string& out_dir) {
  check_export_format(format);
  find(format)->write(job, out_dir);
}

}  // namespace sr
