// --format auto_gptq (spec §5.3): GPTQ v1 layout (zero stored as zp - 1, g_idx), what
// auto-round's export_to_autogptq writes.
#include "common/error.h"
#include "export/autoround_config.h"
#include "export/packed_export.h"

namespace sr {

void check_auto_gptq_plan(const LayerPlan& plan, bool /*calibrated*/) {
  bool any = false;
  for (const LayerChoice& c : plan.layers) {
    if (!c.quantized()) continue;
    const QuantScheme& s = c.scheme;
    auto require = [&](bool ok, const std::string& why) {
      SR_CHECK(ok, "[export] format auto_gptq: layer ", c.name, " (", s.name(), "): ", why);
    };
    require(s.data_type == DataType::Int && !s.act_quantized(),
            "GPTQ stores INT weight-only schemes only (W2/W3/W4/W8 A16); use format auto_round for MXFP/NVFP");
    require(s.bits == 2 || s.bits == 3 || s.bits == 4 || s.bits == 8,
            "GPTQ kernels read 2, 3, 4 and 8 bits only; use format auto_round for other widths");
    require(s.sym, "asymmetric INT cannot be stored faithfully: GPTQ's 'zero - 1' convention has no code for "
            "zero point 0; use format auto_round (or a symmetric scheme, sym)");
    require(s.group_size != 0, "per-tensor INT (group_size 0) cannot be stored in GPTQ words");
    require(c.out % 32 == 0 && c.in % 32 == 0,
            "GPTQ needs out and in divisible by 32, got [" + std::to_string(c.out) + ", " + std::to_string(c.in) + "]");
    require(c.block >= 0, "auto-round's GPTQ export does not pack lm_head");
    any = true;
  }
  SR_CHECK(any, "[export] format auto_gptq: the plan quantizes no layer (use format fake)");
}

void export_auto_gptq(const ExportJob& job, const std::string& out_dir) {
  check_auto_gptq_plan(*job.plan, true);
  PackedFolderSpec spec;
  spec.format = "auto_gptq";
  spec.pack.zero_offset = 1;
  spec.pack.g_idx = true;
  spec.quantization_config = gptq_quantization_config(*job.plan, job.recipe);
  spec.torch_dtype = "float16";  // auto-round's save_model rewrites only this key for GPTQ
  write_packed_folder(job, out_dir, spec);
}

}  // namespace sr
