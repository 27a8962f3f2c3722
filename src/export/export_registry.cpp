// The table of export formats: `--format` names -> writer functions.
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/strings.h"
#include "export/export_job.h"
#include "export/packed_export.h"
#include "export/gguf_target.h"

namespace sr {
namespace {

struct FormatRow {
  std::string name;
  std::function<void(const ExportJob&, const std::string&)> write;
  void (*check_plan)(const LayerPlan&, bool calibrated) = nullptr;  // nullptr: stores any plan
};

// "gguf:<mix>" for every llama.cpp mix, quantized and float (export/gguf_target.h).
void add_gguf_rows(std::vector<FormatRow>& rows) {
  for (GgufMix mix : gguf_target_mixes())
    rows.push_back({std::string("gguf:") + gguf_mix_info(mix).name,
                    [mix](const ExportJob& job, const std::string& out) { export_gguf_target(job, mix, out); }});
  for (GgufMix mix : gguf_float_mixes())
    rows.push_back({std::string("gguf:") + gguf_mix_info(mix).name,
                    [mix](const ExportJob& job, const std::string& out) { export_gguf_float(job, mix, out); }});
}

const std::vector<FormatRow>& formats() {
  static const std::vector<FormatRow> rows = [] {
    std::vector<FormatRow> r = {
        {"fake", export_fake},
        {"auto_round", export_auto_round, check_auto_round_plan},
        {"auto_gptq", export_auto_gptq, check_auto_gptq_plan},
    };
    add_gguf_rows(r);
    return r;
  }();
  return rows;
}

// Format names match case-insensitively ("gguf:Q4_K_M" is gguf:q4_k_m).
const FormatRow* find(const std::string& name) {
  const std::string key = ascii_lower(name);
  for (const FormatRow& r : formats()) if (key == r.name) return &r;
  return nullptr;
}

std::string supported() {
  std::string s;
  for (const FormatRow& r : formats()) s += (s.empty() ? "" : ", ") + r.name;
  return s;
}

}  // namespace

bool is_export_format(const std::string& format) { return find(format) != nullptr; }

std::string export_format_list() { return supported(); }

void check_export_format(const std::string& format) {
  SR_CHECK(find(format), "[export] format ", format, " is not supported (supported: ", supported(), ")");
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
