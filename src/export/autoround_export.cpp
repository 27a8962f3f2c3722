// --format auto_round (spec §5.1, §5.2): what it accepts and how it configures the packed
// folder writer (export/packed_folder.cpp).
#include "common/error.h"
#include "export/autoround_config.h"
#include "export/packed_export.h"

namespace sr {
namespace {

bool is_fp_family(const QuantScheme& s) {
  return s.data_type == DataType::MxFp || s.data_type == DataType::MxFpRceil || s.data_type == DataType::NvFp;
}

// The one error format of this file: "[export] format auto_round: layer X (scheme): why".
template <typename... Parts>
void require(bool ok, const LayerChoice& c, const Parts&... why) {
  SR_CHECK(ok, "[export] format auto_round: layer ", c.name, " (", c.scheme.name(), "): ", why...);
}

void check_int_layer(const LayerChoice& c) {
  const QuantScheme& s = c.scheme;
  require(!s.act_quantized(), c, "INT with quantized activations (W4A4/W8A8) has no auto_round layout here; "
          "use format fake");
  require(s.bits >= 2 && s.bits <= 8, c, "auto_round stores INT at 2..8 bits");
  require(s.group_size != 0, c, "per-tensor INT (group_size 0) cannot be stored in GPTQ words");
  require(c.out % 32 == 0 && c.in % 32 == 0, c, "INT layers need out and in divisible by 32, got [", c.out,
          ", ", c.in, "]");
}

void check_fp_layer(const LayerChoice& c, bool calibrated) {
  const QuantScheme& s = c.scheme;
  require(c.out % 32 == 0 && c.in % 32 == 0, c, "auto-round's MX/NV QuantLinear needs out and in divisible "
          "by 32, got [", c.out, ", ", c.in, "]");
  require(s.data_type == DataType::NvFp || s.group_size == 32, c, "MX layers are stored with group_size 32 only");
  require(c.block >= 0, c, "auto-round does not pack a quantized lm_head in MX/NV exports");
  const bool static_nv = s.act_quantized() && s.act_data_type == DataType::NvFp && !s.act_dynamic;
  require(!static_nv || calibrated, c, "static NVFP4 activations need a calibrated act_max for "
          "input_global_scale; quantize with a calibration dataset (optimized RTN or SignRound), not plain RTN");
}

}  // namespace

void check_auto_round_plan(const LayerPlan& plan, bool calibrated) {
  bool any_int = false, any_fp = false;
  for (const LayerChoice& c : plan.layers) {
    if (!c.quantized()) continue;
    if (c.scheme.data_type == DataType::Int) {
      check_int_layer(c);
      any_int = true;
    } else {
      require(is_fp_family(c.scheme), c, "auto_round stores INT, MXFP4/MXFP8 and NVFP4 here; FP8 is not "
              "implemented (use format fake)");
      check_fp_layer(c, calibrated);
      any_fp = true;
    }
  }
  SR_CHECK(any_int || any_fp, "[export] format auto_round: the plan quantizes no layer (use format fake)");
  SR_CHECK(!(any_int && any_fp), "[export] format auto_round: the plan mixes INT and MX/NV layers, which need different "
           "packing formats (auto_round:auto_gptq vs auto_round:llm_compressor); export them separately or use format fake");
}

void export_auto_round(const ExportJob& job, const std::string& out_dir) {
  check_auto_round_plan(*job.plan, true);
  bool fp = false, all_sym = true;
  for (const LayerChoice& c : job.plan->layers) {
    if (!c.quantized()) continue;
    fp = fp || is_fp_family(c.scheme);
    all_sym = all_sym && c.scheme.sym;
  }
  PackedFolderSpec spec;
  spec.format = "auto_round";
  const std::string pf = fp ? "auto_round:llm_compressor" : all_sym ? "auto_round:auto_gptq" : "auto_round";
  spec.pack.zero_offset = pf == "auto_round:auto_gptq" ? 1 : 0;
  spec.quantization_config = autoround_quantization_config(*job.plan, pf, job.recipe);
  write_packed_folder(job, out_dir, spec);
}

}  // namespace sr
