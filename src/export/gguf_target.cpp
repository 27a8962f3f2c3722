// GGUF as a quantization target: planning from a llama.cpp mix and the exporter that writes
// the tuned ggml rows (contract in gguf_target.h).
#include "export/gguf_target.h"

#include "export/gguf_from_model.h"

#include <algorithm>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/strings.h"
#include "export/gguf_export.h"
#include "export/gguf_from_model.h"
#include "export/hf_folder.h"
#include "model/gguf_names.h"
#include "model/matrix_rows.h"

namespace sr {
namespace fs = std::filesystem;

namespace {

bool is_target_mix(GgufMix mix) {
  const GgmlType base = gguf_mix_info(mix).base;
  return base != GgmlType::F32 && base != GgmlType::F16 && base != GgmlType::BF16;
}

std::string target_list() {
  std::string s;
  for (GgufMix mix : gguf_target_mixes()) s += (s.empty() ? "gguf:" : ", gguf:") + std::string(gguf_mix_info(mix).name);
  for (GgufMix mix : gguf_float_mixes()) s += ", gguf:" + std::string(gguf_mix_info(mix).name);
  return s;
}

// The HF weight name of a layer ("model.layers.0.mlp.up_proj" -> "...up_proj.weight").
std::string weight_name(const std::string& layer) { return layer + ".weight"; }

// The GGUF tensor holding block linear i of block b: "blk.<b>.<stem>.weight" (for an expert, the
// stacked tensor of its projection; LinearDesc::expert is its slice).
std::string gguf_linear_tensor(const BlockDesc& d, int64_t b, int i) {
  return "blk." + std::to_string(b) + "." + d.linears[size_t(i)].gguf + ".weight";
}

// The model's name for the default file name, and general.name where the source names none
// (llama2.c): the folder or file stem.
std::string model_name(const Model& m) {
  fs::path p = fs::path(m.path()).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return fs::is_directory(p) ? p.filename().string() : p.stem().string();
}

// Metadata recording how the file was made: general.quantized_by and one compact
// "signround.recipe" string (e.g. "signround_v2 iters=200 nsamples=128 seqlen=512 seed=42
// dataset=calib_stories.txt"), kept short so that the file is no larger than llama-quantize's
// with its imatrix entries.
std::vector<std::pair<std::string, GgufValue>> run_metadata(const TuningRecipe& r) {
  std::string recipe = r.method;
  if (r.method.rfind("signround", 0) == 0) recipe += " iters=" + std::to_string(r.iters);
  if (r.method != "rtn" && !r.dataset.empty())
    recipe += " nsamples=" + std::to_string(r.nsamples) + " seqlen=" + std::to_string(r.seqlen) +
              " seed=" + std::to_string(r.seed) + " dataset=" + fs::path(r.dataset).filename().string();
  if (!r.imatrix.empty()) recipe += " imatrix=" + fs::path(r.imatrix).filename().string();
  return {{"general.quantized_by", GgufValue::string("signround")}, {"signround.recipe", GgufValue::string(recipe)}};
}

// Writes the quantized layers of one block as tuned and the rest of it as the plan says.
void write_block(GgufModelWriter& w, const ExportJob& job, int64_t b) {
  const Model& m = *job.model;
  const BlockDesc& d = m.block_desc(b);
  std::map<std::string, QuantizedLayer> tuned;
  for (QuantizedLayer& l : job.block_layers(b)) tuned[l.name] = std::move(l);
  std::vector<int> skip;  // the tuned linears' fp32 weights are not needed
  for (int p = 0; p < int(d.linears.size()); ++p)
    if (tuned.count(linear_name(d, b, p))) skip.push_back(p);
  const BlockWeights fp = m.load_block(b, skip);
  const std::string pre = block_prefix(b);
  for (size_t i = 0; i < d.norms.size(); ++i)
    if (d.norms[i].present) w.write_float(pre + d.norms[i].module + ".weight", fp.norm[i]);
  for (int p = 0; p < int(d.linears.size()); ++p) {
    const std::string layer = linear_name(d, b, p), tensor = gguf_linear_tensor(d, b, p);
    const int64_t expert = d.linears[size_t(p)].expert;
    if (d.linears[size_t(p)].bias) w.write_float(layer + ".bias", fp.b[size_t(p)]);
    auto it = tuned.find(layer);
    if (it == tuned.end()) {
      w.write_float(tensor, fp.weight(p), {}, expert);
      continue;
    }
    const QuantizedLayer& l = it->second;
    const GgmlType planned = w.planned(tensor).type;
    SR_CHECK(l.scheme.is_gguf() && l.scheme.ggml_type == planned, "[export gguf] layer ", layer, " was quantized as ",
             l.scheme.name(), " but the file plans ", ggml_type_name(planned));
    const at::Tensor bytes = l.encoded.ggml.contiguous();
    w.write_encoded(tensor, bytes.data_ptr<uint8_t>(), uint64_t(bytes.numel()), expert);
  }
}

// output.weight (untied), output_norm, token_embd: first in the file's order, so the two
// vocabulary-sized matrices are encoded a chunk of rows at a time straight into the file, from
// the mapped source where the model leaves them there (model/matrix_rows.h).
void write_top_level(GgufModelWriter& w, const ExportJob& job) {
  const Model& m = *job.model;
  auto rows_of = [&m](const char* name) {
    return [&m, name](int64_t r0, int64_t n) { return vocab_matrix_rows(m, name, r0, n); };
  };
  if (!m.config().tie_embeddings) {
    const QuantizedLayer* head = nullptr;
    for (const QuantizedLayer& l : job.head_layers) if (l.name == "lm_head") head = &l;
    if (head) {
      SR_CHECK(head->scheme.is_gguf() && head->scheme.ggml_type == w.planned("lm_head.weight").type,
               "[export gguf] lm_head was quantized as ", head->scheme.name(), " but the file plans ",
               ggml_type_name(w.planned("lm_head.weight").type));
      const at::Tensor bytes = head->encoded.ggml.contiguous();
      w.write_encoded("lm_head.weight", bytes.data_ptr<uint8_t>(), uint64_t(bytes.numel()));
    } else {
      auto it = job.imatrix.find("lm_head");
      const bool blocks = ggml_type_traits(w.planned("lm_head.weight").type).block_size > 1;
      w.write_float_rows("lm_head.weight", rows_of("lm_head.weight"),
                         it != job.imatrix.end() && blocks ? it->second : at::Tensor());
    }
  }
  w.write_float("model.norm.weight", m.final_norm());
  // llama.cpp has no imatrix for the embedding.
  w.write_float_rows("model.embed_tokens.weight", rows_of("model.embed_tokens.weight"));
}

GgufExportOptions file_options(const Model& m, const TuningRecipe& recipe, bool progress) {
  GgufExportOptions fo;
  fo.model_name = model_name(m);
  fo.extra_metadata = run_metadata(recipe);
  fo.source = gguf_source_of(m.path(), m.tokenizer().vocabulary());
  fo.progress = progress;
  return fo;
}

void write_file(const ExportJob& job, const GgufTarget& t, const std::string& path) {
  const Model& m = *job.model;
  const GgufExportOptions fo = file_options(m, job.recipe.value_or(TuningRecipe{}), job.progress);
  GgufModelWriter w(path, m.config(), m.tokenizer().vocabulary(), t.mix, t.tensors, fo);
  write_top_level(w, job);
  Progress progress("export blocks", int(m.config().n_layers), job.progress);
  for (int64_t b = 0; b < m.config().n_layers; ++b) {
    write_block(w, job, b);
    progress.update(int(b + 1), "tensor " + std::to_string(w.tensors_written()) + "/" +
                                    std::to_string(w.plan().size()) + ", " + format_bytes(double(w.data_written())) +
                                    " of " + format_bytes(double(w.data_bytes())) + " written");
  }
  w.finish();
  progress.finish();
}

}  // namespace

bool is_gguf_format(const std::string& format) { return ascii_lower(format).rfind("gguf:", 0) == 0; }

std::vector<GgufMix> gguf_target_mixes() {
  std::vector<GgufMix> out;
  for (const GgufMixInfo& m : gguf_mixes())
    if (is_target_mix(m.mix)) out.push_back(m.mix);
  return out;
}

std::vector<GgufMix> gguf_float_mixes() {
  std::vector<GgufMix> out;
  for (const GgufMixInfo& m : gguf_mixes())
    if (!is_target_mix(m.mix)) out.push_back(m.mix);
  return out;
}

bool is_gguf_float_mix(GgufMix mix) { return !is_target_mix(mix); }

GgufMix gguf_format_mix(const std::string& format) {
  SR_CHECK(is_gguf_format(format), "[export] format ", format, " is not a GGUF target (expected one of ", target_list(), ")");
  const std::string name = ascii_lower(format.substr(5));
  for (const GgufMixInfo& m : gguf_mixes())
    if (name == m.name) return m.mix;
  fail("[export] format ", format, " is not a GGUF target (expected one of ", target_list(), ")");
}

QuantScheme gguf_mix_scheme(GgufMix mix) { return gguf_scheme(gguf_mix_info(mix).base); }

const GgufTensorPlan& GgufTarget::tensor(const std::string& gguf_name) const {
  for (const GgufTensorPlan& t : tensors)
    if (t.name == gguf_name) return t;
  fail("[gguf] the file plan has no tensor '", gguf_name, "'");
}

GgufTensorPlan& GgufTarget::tensor(const std::string& gguf_name) {
  return const_cast<GgufTensorPlan&>(static_cast<const GgufTarget&>(*this).tensor(gguf_name));
}

GgufTarget plan_gguf_target(const ModelConfig& c, GgufMix mix, bool has_imatrix, const GgufTypeControls& controls,
                            const std::set<std::string>* imatrix_tensors) {
  GgufPlanOptions po;
  po.has_imatrix = has_imatrix;
  po.controls = controls;
  if (imatrix_tensors) po.imatrix_tensors = *imatrix_tensors;
  po.log = false;
  GgufTarget t{mix, has_imatrix, plan_gguf_types(c, mix, po)};
  // Block linears are tuned (a quantization scheme: F16, BF16, the legacy, k-quant and i-quant types);
  // the other matrices are encoded as llama-quantize does (any type with a codec).
  const std::vector<GgmlType> tunable = gguf_matrix_types();
  for (const GgufTensorPlan& p : t.tensors) {
    if (!p.weight_matrix || p.type == GgmlType::F32) continue;
    const char* name = gguf_mix_info(mix).name;
    const std::string type = ggml_type_name(p.type);
    SR_CHECK(ggml_type_traits(p.type).supported(), "[gguf] gguf:", name, ": tensor ", p.name, " gets type ", type,
             ", which is not implemented yet (no ", type, " codec; implemented: ", ggml_supported_type_names(), ")");
    SR_CHECK(p.name.rfind("blk.", 0) != 0 || std::count(tunable.begin(), tunable.end(), p.type) > 0, "[gguf] gguf:",
             name, ": tensor ", p.name, " gets type ", type, ", which is not implemented as a quantization target "
             "yet (its codec exists, but not its tuning: block linears can be ",
             [&] {
               std::string s;
               for (GgmlType x : tunable) s += (s.empty() ? "" : ", ") + ascii_lower(ggml_type_name(x));
               return s;
             }(), ")");
  }
  return t;
}

std::map<std::string, LayerDefault> gguf_layer_defaults(const GgufTarget& target, const BlockDescs& blocks) {
  const std::string tag = std::string("gguf ") + gguf_mix_info(target.mix).name;
  auto from = [&](const GgufTensorPlan& t) -> LayerDefault {
    return {gguf_scheme(t.type), t.why.empty() ? tag : tag + ": " + t.why + " " + ascii_lower(ggml_type_name(t.type))};
  };
  std::map<std::string, LayerDefault> out;
  for (int64_t b = 0; b < blocks.size(); ++b)
    for (int i = 0; i < int(blocks[b].linears.size()); ++i) {
      const BlockDesc& d = blocks[b];
      const GgufTensorPlan& t = target.tensor(gguf_linear_tensor(d, b, i));
      if (d.linears[size_t(i)].keep_16bit && t.type == GgmlType::F32) continue;  // a router: F32 as llama.cpp keeps it
      out[linear_name(d, b, i)] = from(t);
    }
  for (const GgufTensorPlan& t : target.tensors)
    if (t.name == "output.weight") out["lm_head"] = from(t);
  return out;
}

void settle_gguf_target(GgufTarget& target, const LayerPlan& plan, const std::string& format) {
  std::map<std::string, const LayerChoice*> stacked;  // an expert tensor's first layer: the others must agree
  for (const LayerChoice& c : plan.layers) {
    const bool router = c.block >= 0 && plan.blocks[c.block].linears[size_t(c.linear)].keep_16bit;
    if (router && !c.quantized()) continue;  // stays F32 (llama-quantize never quantizes it)
    GgmlType type;
    try {
      type = ggml_type_of(c.scheme);
    } catch (const Error&) {
      fail("[export] format ", format, ": layer ", c.name, " has scheme ", c.scheme.name(), " (", c.source,
           "), which GGUF cannot store; give it a gguf:<type> (e.g. \"gguf:q4_k\"), \"BF16\" or \"FP16\" scheme");
    }
    GgufTensorPlan& t = target.tensor(c.block >= 0 ? gguf_linear_tensor(plan.blocks[c.block], c.block, c.linear)
                                                   : gguf_tensor_name(weight_name(c.name)));
    if (t.shape.size() == 3) {
      auto [first, fresh] = stacked.emplace(t.name, &c);
      SR_CHECK(fresh || first->second->scheme == c.scheme, "[export] format ", format, ": the experts of ", t.name,
               " are one GGUF tensor and need one type; layer ", c.name, " has ", c.scheme.name(), " but ",
               first->second->name, " has ", first->second->scheme.name());
    }
    if (type == t.type) continue;
    const int64_t block = ggml_type_traits(type).block_size;
    SR_CHECK(t.shape.back() % block == 0, "[export] format ", format, ": layer ", c.name, ": rows of ", t.shape.back(),
             " elements are not a multiple of ", block, ", required for ", ggml_type_name(type));
    t.type = type;
    t.why = "override";
  }
}

uint64_t gguf_target_file_bytes(const Model& model, const GgufTarget& t, const TuningRecipe& recipe) {
  const GgufExportOptions fo = file_options(model, recipe, false);
  return gguf_model_file_size(model_name(model) + ".gguf", model.config(), model.tokenizer().vocabulary(),
                              t.mix, t.tensors, fo);
}

std::string gguf_output_file(const Model& model, GgufMix mix, const std::string& out) {
  if (ascii_lower(fs::path(out).extension().string()) == ".gguf") return out;
  return (fs::path(out) / (model_name(model) + "-" + ascii_upper(gguf_mix_info(mix).name) + ".gguf")).string();
}

void export_gguf_target(const ExportJob& job, GgufMix mix, const std::string& out) {
  SR_CHECK(job.gguf && job.gguf->mix == mix, "[export gguf] the run planned no ", gguf_mix_info(mix).name,
           " file (plan_gguf_target + settle_gguf_target before tuning)");
  const std::string file = gguf_output_file(*job.model, mix, out);
  if (file == out) return write_file(job, *job.gguf, file);  // GgufWriter renames into place itself
  AtomicPath dir(out);
  fs::create_directories(dir.temp());
  write_file(job, *job.gguf, (fs::path(dir.temp()) / fs::path(file).filename()).string());
  write_json(dir.temp(), "signround_run.json", job.record);
  dir.commit();
}

void export_gguf_float(const ExportJob& job, GgufMix mix, const std::string& out) {
  SR_CHECK(is_gguf_float_mix(mix), "[export gguf] ", gguf_mix_info(mix).name, " is a quantized mix (export_gguf_target)");
  const Model& m = *job.model;
  GgufModelExportOptions o;
  o.file.model_name = model_name(m);
  o.progress = job.progress;
  o.plan.log = false;
  const std::string file = gguf_output_file(m, mix, out);
  if (file == out) {  // GgufWriter renames into place itself
    export_gguf(m, file, mix, o);
    return;
  }
  AtomicPath dir(out);
  fs::create_directories(dir.temp());
  export_gguf(m, (fs::path(dir.temp()) / fs::path(file).filename()).string(), mix, o);
  write_json(dir.temp(), "signround_run.json", job.record);
  dir.commit();
}

}  // namespace sr
