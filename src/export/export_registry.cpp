// The table of export formats: `--format` names -> writer functions.
#include <cctype>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "export/export_job.h"
#include "export/gguf_target.h"

namespace sr {
namespace {

struct FormatRow {
  std::string name;
  std::function<void(const ExportJob&, const std::string&)> write;
};

// "gguf:<mix>" for every quantized llama.cpp mix (export/gguf_target.h).
void add_gguf_rows(std::vector<FormatRow>& rows) {
  for (GgufMix mix : gguf_target_mixes())
    rows.push_back({std::string("gguf:") + gguf_mix_info(mix).name,
                    [mix](const ExportJob& job, const std::string& out) { export_gguf_target(job, mix, out); }});
}

const std::vector<FormatRow>& formats() {
  static const std::vector<FormatRow> rows = [] {
    std::vector<FormatRow> r = {
        {"fake", export_fake},
    };
    add_gguf_rows(r);
    return r;
  }();
  return rows;
}

// Format names match case-insensitively ("gguf:Q4_K_M" is gguf:q4_k_m).
const FormatRow* find(const std::string& name) {
  std::string key = name;
  for (char& ch : key) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  for (const FormatRow& r : formats()) if (key == r.name) return &r;
  return nullptr;
}

std::string supported() {
  std::string s;
  for (const FormatRow& r : formats()) s += (s.empty() ? "" : ", ") + r.name;
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
