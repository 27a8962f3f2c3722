// signround quantize: RTN, optimized RTN or SignRound (v1 / V2) block by block,
// then export in the requested formats. Flags follow auto-round's names
// (underscores or dashes both work).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/autoscheme_flags.h"
#include "cli/commands.h"
#include "cli/dist_flags.h"
#include "cli/flag_values.h"
#include "common/atomic_file.h"
#include "common/dist.h"
#include "common/amp.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/strings.h"
#include "common/sysinfo.h"
#include "export/export_job.h"
#include "export/gguf_target.h"
#include "io/imatrix_file.h"
#include "tune/pipeline.h"

namespace sr::cli {
namespace fs = std::filesystem;

namespace {

std::vector<FlagSpec> quantize_flags() {
  std::vector<FlagSpec> f = {
      {"model", true, "source model: HF folder, .gguf or llama2.c .bin", ""},
      {"output-dir", true, "where the quantized model is written", ""},
      {"format", true, "comma list of export formats: fake, gguf:<mix> (q2_k ... q8_0, or f32/f16/bf16: "
                       "converted without quantizing; a .gguf output path or a folder)", "fake"},
      {"scheme", true, "preset (W4A16, W2A16G64, MXFP4, NVFP4, gguf:q4_k, ...) or key=value fields",
       "W4A16; with --format gguf:<mix>, the mix's types"},
      {"bits", true, "override the scheme's weight bits (with --options/--schemes and no --avg_bits: the average-bits "
                     "target, auto-round's AutoScheme spelling)", ""},
      {"group-size", true, "override the scheme's group size (-1 per channel, 0 per tensor)", ""},
      {"sym", false, "symmetric INT weights", ""},
      {"asym", false, "asymmetric INT weights", ""},
      {"data-type", true, "override the scheme's weight data type (int, mx_fp, nv_fp, fp8)", ""},
      {"act-bits", true, "override the scheme's activation bits", ""},
      {"layer-config", true, "JSON mapping layer names/regexes to schemes", ""},
      {"quant-lm-head", false, "also quantize lm_head (untied models)", ""},
      {"iters", true, "SignRound iterations per block; 0 = (optimized) RTN", "200"},
      {"recipe", true, "default | best | light (auto-round's presets)", "default"},
      {"disable-opt-rtn", false, "with --iters 0: plain RTN instead of optimized RTN", ""},
      {"enable-alg-ext", false, "SignRoundV2 (the default for sym INT, MX and NV schemes)", ""},
      {"disable-alg-ext", false, "SignRound v1 instead of V2", ""},
      {"lr", true, "learning rate of v", "1/iters"},
      {"minmax-lr", true, "learning rate of the scale multipliers", "lr"},
      {"batch-size", true, "samples per tuning step", "8"},
      {"gradient-accumulate-steps", true, "mini-batches accumulated per step", "1"},
      {"nblocks", true, "decoder blocks tuned together", "1"},
      {"not-use-best-mse", false, "keep the last iteration instead of the best", ""},
      {"disable-minmax-tuning", false, "tune only the rounding offsets v", ""},
      {"disable-quanted-input", false, "tune on full-precision inputs instead of quantized-path ones", ""},
      {"dataset", true, "calibration text (plain text or JSONL with a \"text\" field)", ""},
      {"imatrix", true, "llama.cpp imatrix file (GGUF or legacy .dat) used instead of the collected one", ""},
      {"save-imatrix", true, "write the collected imatrix for llama.cpp (GGUF; a .dat name: the legacy format)", ""},
      {"nsamples", true, "calibration samples", "128"},
      {"seqlen", true, "tokens per calibration sample (capped at the model's context)", "2048"},
      {"seed", true, "random seed (sample choice, mini-batch order)", "42"},
      {"cache-dtype", true, "fp32 | bf16 storage of the activation caches", "bf16 with amp, else fp32"},
      {"cache-budget", true, "memory the two activation caches may take before they spill to files on disk (bytes, or 8G, 500M ...)", "a quarter of RAM"},
      {"cache-dir", true, "folder for activation caches that spill (their files are deleted at once)", "beside --output_dir"},
      {"disable-amp", false, "tune in fp32 (default: bf16 matmuls where the CPU has native bf16)", ""},
      {"enable-amp", false, "tune with bf16 matmuls even where the CPU emulates bf16 (slower there)", ""},
      {"checkpoint", true, "auto | on | off: recompute the blocks' attention scores and MLP activations in the "
                           "backward instead of keeping them (same result, about one more forward per step); auto: on "
                           "when the estimated tuning graph exceeds a quarter of RAM", "auto"},
      {"max-shard-size", true, "split safetensors outputs into shards of at most this many MB", "0 (one file)"},
      {"overwrite", false, "replace a non-empty --output_dir that signround did not write (or an existing .gguf file)", ""},
      {"resume", false, "continue an interrupted run from <output_dir>.partial", ""},
      {"stop-after-units", true, "testing aid: stop (as if killed) after this many units", ""},
      {"json", false, "print the run record as JSON", ""},
      {"quiet", false, "no progress on stderr", ""},
      // Data-parallel tuning (README): one process per rank, each on its shard of the samples
      // (--rank, --world_size, ...: cli/dist_flags.h).
      {"data-shards", true, "split the samples into N equal shards as an N-rank run does (one process then "
                            "reproduces that run)", "world_size"},
      // Mixed precision (--avg_bits): the search runs first and its layer config is quantized.
      {"autoscheme-nsamples", true, "with --avg_bits: DeltaLoss calibration samples", "16"},
      {"autoscheme-seqlen", true, "with --avg_bits: DeltaLoss tokens per sample", "256"},
      {"autoscheme-batch-size", true, "with --avg_bits: DeltaLoss samples per forward/backward", "8"},
      // llama-quantize's per-tensor controls (--format gguf:<mix>; docs/gguf.md).
      {"tensor-type", true, "REGEX=TYPE: tensors whose GGUF name matches get TYPE (repeatable; first match wins)", ""},
      {"tensor-type-file", true, "file of --tensor_type entries, one REGEX=TYPE per line", ""},
      {"output-tensor-type", true, "ggml type of output.weight", "the mix's"},
      {"token-embedding-type", true, "ggml type of token_embd.weight", "the mix's"},
      {"pure", false, "no mix rules: every weight matrix gets the mix's base type", ""},
      {"dry-run", false, "print each GGUF tensor's type and size and the file's total, quantize nothing", ""},
      {"target-bpw", true, "mixed precision for a whole-file bits per weight (file bytes x 8 / parameters)", ""},
      {"target-size", true, "mixed precision for a file size (e.g. 1.5G, 800M, bytes; powers of 1024)", ""},
  };
  auto as = autoscheme_common_flags();
  f.insert(f.end(), as.begin(), as.end());
  auto dist = dist_flags();
  f.insert(f.end(), dist.begin(), dist.end());
  return f;
}

// --bits is the scheme's weight bits, unless it is AutoScheme's average (autoscheme_flags.h).
bool scheme_bits_given(const Args& a) { return a.has("bits") && avg_bits_flag(a) != "bits"; }

bool scheme_flags_given(const Args& a) {
  for (const char* f : {"scheme", "group-size", "sym", "asym", "data-type", "act-bits"})
    if (a.has(f)) return true;
  return scheme_bits_given(a);
}

QuantScheme scheme_from_flags(const Args& a) {
  QuantScheme s = parse_scheme(a.str("scheme", "W4A16"));
  const bool bits = scheme_bits_given(a);
  if (a.has("data-type")) s.data_type = parse_data_type(a.str("data-type"), int(bits ? a.integer("bits", s.bits) : s.bits));
  if (bits) s.bits = int(a.integer("bits", s.bits));
  if (a.has("group-size")) s.group_size = a.integer("group-size", s.group_size);
  SR_CHECK(!(a.flag("sym") && a.flag("asym")), "--sym and --asym exclude each other");
  if (a.flag("sym")) s.sym = true;
  if (a.flag("asym")) s.sym = false;
  if (a.has("act-bits")) s.act_bits = int(a.integer("act-bits", s.act_bits));
  s.validate();
  return s;
}

// auto-round's recipes (spec §2.6): defaults that explicit flags override.
void apply_recipe(const std::string& r, QuantizeOptions& o) {
  if (r == "default") return;
  if (r == "best") { o.tune.iters = 1000; o.calib.nsamples = 512; return; }
  if (r == "light") { o.tune.iters = 50; o.tune.lr = 5e-3; return; }
  fail("--recipe must be default, best or light, got '", r, "'");
}

QuantizeOptions options_from_flags(const Args& a) {
  QuantizeOptions o;
  o.calib.nsamples = 128;
  o.calib.seqlen = 2048;
  apply_recipe(a.str("recipe", "default"), o);
  TuneOptions& t = o.tune;
  t.iters = a.integer("iters", t.iters);
  SR_CHECK(t.iters >= 0, "--iters must be >= 0, got ", t.iters);
  t.lr = a.number("lr", t.lr);
  t.minmax_lr = a.number("minmax-lr", t.minmax_lr);
  t.batch_size = a.integer("batch-size", 8);
  t.gradient_accumulate_steps = a.integer("gradient-accumulate-steps", 1);
  SR_CHECK(t.batch_size >= 1, "--batch_size must be >= 1, got ", t.batch_size);
  SR_CHECK(t.gradient_accumulate_steps >= 1, "--gradient_accumulate_steps must be >= 1, got ",
           t.gradient_accumulate_steps);
  t.not_use_best_mse = a.flag("not-use-best-mse");
  t.enable_minmax_tuning = !a.flag("disable-minmax-tuning");
  SR_CHECK(!(a.flag("enable-alg-ext") && a.flag("disable-alg-ext")), "--enable_alg_ext and --disable_alg_ext exclude each other");
  t.alg_ext = !a.flag("disable-alg-ext");
  t.seed = uint64_t(a.integer("seed", 42));
  t.method = t.iters > 0 ? Method::SignRound : a.flag("disable-opt-rtn") ? Method::Rtn : Method::OptRtn;
  o.calib.dataset = a.str("dataset");
  o.calib.nsamples = a.integer("nsamples", o.calib.nsamples);
  o.calib.seqlen = a.integer("seqlen", o.calib.seqlen);
  o.calib.seed = t.seed;
  o.nblocks = a.integer("nblocks", 1);
  o.enable_quanted_input = !a.flag("disable-quanted-input");
  // amp (common/amp.h) where the CPU multiplies bf16 natively and something is tuned; its caches
  // default to bf16 too (auto-round's). Data-free and RTN runs compute nothing it would speed up.
  t.amp = t.method == Method::SignRound && amp_from_flags(a);
  const std::string cache = a.str("cache-dtype", t.amp ? "bf16" : "fp32");
  SR_CHECK(cache == "fp32" || cache == "bf16" || cache == "float32" || cache == "bfloat16",
           "--cache_dtype must be fp32 or bf16, got '", cache, "'");
  o.cache_bf16 = cache == "bf16" || cache == "bfloat16";
  if (a.has("cache-budget")) {
    o.cache_budget = int64_t(parse_size("--cache_budget", a.str("cache-budget")));
    SR_CHECK(o.cache_budget > 0, "--cache_budget must be positive, got '", a.str("cache-budget"), "'");
  }
  o.cache_dir = a.str("cache-dir");
  const std::string ckpt = a.str("checkpoint", "auto");
  SR_CHECK(ckpt == "auto" || ckpt == "on" || ckpt == "off", "--checkpoint must be auto, on or off, got '", ckpt, "'");
  t.checkpoint = ckpt == "on" ? Checkpoint::On : ckpt == "off" ? Checkpoint::Off : Checkpoint::Auto;
  o.resume = a.flag("resume");
  o.stop_after_units = a.integer("stop-after-units", -1);
  o.progress = !a.flag("quiet");
  return o;
}

// What the exports record of how the run tuned (export/export_job.h).
TuningRecipe tuning_recipe(const QuantizeOptions& o, const std::string& imatrix) {
  const TuneOptions& t = o.tune;
  TuningRecipe r;
  r.method = t.method == Method::Rtn ? "rtn" : t.method == Method::OptRtn ? "opt_rtn"
             : t.alg_ext ? "signround_v2" : "signround_v1";
  r.iters = t.iters, r.lr = t.lr, r.minmax_lr = t.minmax_lr;
  r.batch_size = t.batch_size, r.gradient_accumulate_steps = t.gradient_accumulate_steps;
  r.nsamples = o.calib.nsamples, r.seqlen = o.calib.seqlen, r.seed = t.seed, r.dataset = o.calib.dataset;
  r.imatrix = imatrix;
  r.enable_minmax_tuning = t.enable_minmax_tuning, r.enable_quanted_input = o.enable_quanted_input;
  return r;
}

// The run record's "settings": the recipe plus what only the record keeps.
nlohmann::json settings_json(const QuantizeOptions& o, const TuningRecipe& r, const std::string& model,
                             const LayerPlan& plan) {
  return {{"model", fs::absolute(model).string()}, {"method", r.method}, {"layers", nlohmann::json(plan.to_json())},
          {"iters", r.iters}, {"lr", r.lr}, {"minmax_lr", r.minmax_lr}, {"batch_size", r.batch_size},
          {"gradient_accumulate_steps", r.gradient_accumulate_steps}, {"not_use_best_mse", o.tune.not_use_best_mse},
          {"enable_minmax_tuning", r.enable_minmax_tuning}, {"seed", r.seed}, {"dataset", r.dataset},
          {"nsamples", r.nsamples}, {"seqlen", r.seqlen}, {"nblocks", o.nblocks},
          {"enable_quanted_input", r.enable_quanted_input}, {"cache_bf16", o.cache_bf16}, {"amp", o.tune.amp}, {"threads", threads()}};
}

// The GGUF target among `formats`, if any, with the rules for combining it: one mix per run,
// and beside it only formats that store any scheme (fake). Returns "" when there is none.
std::string gguf_target_of(const std::vector<std::string>& formats) {
  std::string gguf;
  for (const std::string& f : formats) {
    if (!is_gguf_format(f)) continue;
    SR_CHECK(gguf.empty(), "--format: one run quantizes to one GGUF mix (its per-layer types differ), got ", gguf,
             " and ", f, "; run them separately");
    gguf = f;
  }
  if (gguf.empty()) return gguf;
  for (const std::string& f : formats)
    SR_CHECK(f == gguf || f == "fake", "--format ", gguf, " quantizes the layers to ggml block types, which --format ",
             f, " cannot store (its schemes and the mix's do not agree); export ", f, " in a separate run");
  return gguf;
}

// PlanOptions for a GGUF target: the mix defines the scheme; an explicit --scheme must agree.
PlanOptions gguf_plan_options(const Args& a, const Model& model, const std::string& format,
                              const std::string& layer_config, const GgufTarget& target) {
  PlanOptions po{gguf_mix_scheme(target.mix), layer_config, a.flag("quant-lm-head"), {}};
  if (scheme_flags_given(a)) {
    const QuantScheme given = scheme_from_flags(a);
    SR_CHECK(given == po.scheme, "--scheme ", given.name(), " disagrees with --format ", format, ", whose scheme is ",
             po.scheme.name(), " (with its per-layer types); drop --scheme, or change single layers with --layer_config");
  }
  po.layer_defaults = gguf_layer_defaults(target, model.block_descs());
  return po;
}

std::string format_dir(const std::string& out, const std::string& format, size_t n_formats) {
  if (n_formats == 1) return out;
  std::string f = format;
  for (char& ch : f) if (ch == ':') ch = '-';
  return (fs::path(out) / f).string();
}

bool is_gguf_path(const std::string& p) { return ascii_lower(fs::path(p).extension().string()) == ".gguf"; }

fs::path canonical_of(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? fs::absolute(p).lexically_normal() : c;
}

// True when `inner` is `outer` or lies below it.
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto o = outer.begin(), i = inner.begin();
  for (; o != outer.end() && !o->empty(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

// Before anything is written: the output must not be, contain or lie inside the model, and
// must not replace anything signround did not write (unless --overwrite, and never a
// regular file where a folder goes). Why: the export replaces the output path wholesale.
void check_output_path(const std::string& out, const std::string& model, bool gguf_file, bool overwrite) {
  const fs::path o = canonical_of(out), m = canonical_of(model);
  SR_CHECK(!is_within(m, o), "--output_dir ", out, " is or contains the input model ", model,
           "; writing there would destroy it, choose another folder");
  SR_CHECK(!is_within(o, m), "--output_dir ", out, " lies inside the input model ", model,
           "; choose a folder outside it");
  std::error_code ec;
  const fs::file_status st = fs::status(out, ec);
  if (!fs::exists(st)) return;
  if (gguf_file) {
    SR_CHECK(fs::is_regular_file(st), "--output_dir ", out, " exists and is not a regular file");
    SR_CHECK(overwrite, "--output_dir ", out, " already exists; pass --overwrite to replace it");
    return;
  }
  SR_CHECK(fs::is_directory(st), "--output_dir ", out, " exists and is not a folder; signround never replaces it "
           "(remove it yourself or choose another path)");
  SR_CHECK(fs::is_empty(out, ec) || is_signround_output(out) || overwrite, "--output_dir ", out,
           " is a non-empty folder signround did not write (no ", kOutputMarker, "); pass --overwrite to replace it");
}

// llama-quantize's per-tensor controls from the flags (--tensor_type entries before the file's).
GgufTypeControls type_controls_from_flags(const Args& a) {
  GgufTypeControls u;
  for (const std::string& v : a.all("tensor-type")) u.tensor_types.push_back(parse_tensor_type(v, "--tensor_type"));
  if (a.has("tensor-type-file"))
    for (GgufTensorTypeRule& r : read_tensor_type_file(a.required("tensor-type-file"))) u.tensor_types.push_back(r);
  if (a.has("output-tensor-type")) u.output_type = parse_written_type("--output_tensor_type", a.str("output-tensor-type"));
  if (a.has("token-embedding-type"))
    u.token_embd_type = parse_written_type("--token_embedding_type", a.str("token-embedding-type"));
  u.pure = a.flag("pure");
  return u;
}

// Whether the run searches a mixed-precision allocation (--avg_bits and its spellings).
bool searches(const Args& a) { return !avg_bits_flag(a).empty() || a.has("target-bpw") || a.has("target-size"); }

// The flag combinations of the per-tensor controls, refused before any work.
void check_tensor_flags(const Args& a, const std::string& gguf, const GgufTypeControls& u) {
  const bool by_file = a.has("target-bpw") || a.has("target-size");
  SR_CHECK(!gguf.empty() || (!u.any() && !a.flag("dry-run")), "--tensor_type, --tensor_type_file, "
           "--output_tensor_type, --token_embedding_type, --pure and --dry_run need --format gguf:<mix>");
  SR_CHECK(!gguf.empty() || !by_file, "--target_bpw and --target_size count file bits and need --format gguf:<mix>");
  SR_CHECK(!(a.has("target-bpw") && a.has("target-size")), "--target_bpw and --target_size exclude each other");
  SR_CHECK(!by_file || avg_bits_flag(a).empty(),
           "--target_bpw / --target_size and --avg_bits exclude each other (one budget per run)");
  SR_CHECK(!searches(a) || (u.tensor_types.empty() && !u.pure), "--tensor_type and --pure fix layer types that "
           "the mixed-precision search (--avg_bits, --target_bpw, --target_size) chooses; fix layers with "
           "--layer_config instead");
}

// --target_bpw / --target_size as the search's average file bits per searched weight: the
// budget minus what the search does not choose (embeddings, output, norms, metadata), spread
// over the block linears. The fixed part is the mix's file less its block linears.
double file_target_bits(const Args& a, const Model& m, const GgufTarget& t, const TuningRecipe& r) {
  if (!a.has("target-bpw") && !a.has("target-size")) return 0;
  const double budget = a.has("target-size") ? 8.0 * parse_size("--target_size", a.str("target-size"))
                                             : a.number("target-bpw", 0) * double(m.parameter_count());
  SR_CHECK(budget > 0, "--target_bpw must be > 0, got ", a.str("target-bpw"));
  double searched_weights = 0, searched_bits = 0;
  for (const GgufTensorPlan& p : t.tensors) {
    if (p.name.rfind("blk.", 0) != 0 || !p.weight_matrix || p.type == GgmlType::F32) continue;  // F32: a router
    int64_t n = 1;
    for (int64_t d : p.shape) n *= d;
    searched_weights += double(n);
    searched_bits += 8.0 * double(ggml_row_bytes(p.type, p.shape.back()) * uint64_t(n / p.shape.back()));
  }
  const double fixed = 8.0 * double(gguf_target_file_bytes(m, t, r)) - searched_bits;
  const double avg = (budget - fixed) / searched_weights;
  SR_CHECK(avg > 0, a.has("target-size") ? "--target_size " : "--target_bpw ",
           a.str(a.has("target-size") ? "target-size" : "target-bpw"), " leaves nothing for the block linears: "
           "the rest of the file (embeddings, output, norms, metadata) alone takes ", int64_t(fixed / 8), " bytes");
  return avg;
}

// --dry_run: the planned file, tensor by tensor, and its size (what the real run would write).
int print_dry_run(const Args& a, const Model& m, const GgufTarget& t, const TuningRecipe& r, const std::string& file) {
  const uint64_t bytes = gguf_target_file_bytes(m, t, r);
  const double bpw = 8.0 * double(bytes) / double(m.parameter_count());
  nlohmann::json tensors = nlohmann::json::array();
  for (const GgufTensorPlan& p : t.tensors) {
    int64_t n = 1;
    for (int64_t d : p.shape) n *= d;
    const uint64_t b = p.shape.back() ? ggml_row_bytes(p.type, p.shape.back()) * uint64_t(n / p.shape.back()) : 0;
    tensors.push_back({{"name", p.name}, {"shape", p.shape}, {"type", ascii_lower(ggml_type_name(p.type))},
                       {"bytes", b}, {"why", p.why}});
  }
  nlohmann::json j = {{"dry_run", true}, {"mix", gguf_mix_info(t.mix).name}, {"file", file}, {"tensors", tensors},
                      {"bytes", bytes}, {"parameters", m.parameter_count()}, {"bits_per_weight", bpw}};
  if (a.flag("json")) return print_json(j);
  std::printf("%-34s %-16s %-6s %12s  %s\n", "tensor", "shape", "type", "bytes", "why");
  for (const auto& x : tensors) {
    std::string shape;
    for (int64_t d : x["shape"]) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    std::printf("%-34s %-16s %-6s %12llu  %s\n", x["name"].get<std::string>().c_str(), shape.c_str(),
                x["type"].get<std::string>().c_str(), (unsigned long long)x["bytes"].get<uint64_t>(),
                x["why"].get<std::string>().c_str());
  }
  std::printf("total      %s: %llu bytes (%s), %.4f bits/weight (file bytes over %lld parameters); nothing written\n",
              file.c_str(), (unsigned long long)bytes, format_bytes(double(bytes)).c_str(), bpw,
              (long long)m.parameter_count());
  return 0;
}

// --imatrix (read and mapped onto the model now, so a bad file stops the run before any work)
// and --save_imatrix (checked now, written after the run).
void imatrix_options(const Args& a, const Model& model, QuantizeOptions& o, Importances& given,
                     Importances& collected) {
  if (a.has("imatrix")) {
    SR_CHECK(o.tune.method != Method::Rtn, "--imatrix is used by optimized RTN and SignRound; drop --disable_opt_rtn");
    const std::string path = a.str("imatrix");
    given = importances_from_file(read_imatrix_file(path), path, model.config(), model.block_descs());
    o.imatrix = &given;
  }
  if (!a.has("save-imatrix")) return;
  SR_CHECK(!o.calib.dataset.empty() && o.tune.method != Method::Rtn, "--save_imatrix collects the imatrix on the "
           "calibration data: it needs --dataset, and optimized RTN or SignRound (not --disable_opt_rtn)");
  const fs::path parent = fs::absolute(a.str("save-imatrix")).parent_path();
  SR_CHECK(fs::is_directory(parent), "--save_imatrix ", a.str("save-imatrix"), ": the folder ", parent.string(),
           " does not exist");
  o.collected_imatrix = &collected;
}

// --save_imatrix: what the run collected, as llama-imatrix would have written it (one chunk per
// calibration sample).
void save_imatrix(const std::string& path, const Importances& im, const Model& model, const QuantizeOptions& o,
                  const nlohmann::json& record) {
  ImatrixFile f = imatrix_file_of(im, model.config(), model.block_descs());
  f.datasets = {o.calib.dataset};
  f.chunk_count = record["calibration"]["samples"].get<uint32_t>();
  f.chunk_size = record["calibration"]["seqlen"].get<uint32_t>();
  write_imatrix_file(path, f, ascii_lower(fs::path(path).extension().string()) == ".dat");
}

// --format gguf:f32 / f16 / bf16: the model converted as it is, nothing tuned (a Python-free
// convert_hf_to_gguf.py); the quantization flags do not apply.
int convert_to_gguf(const Args& a, const Model& model, const std::string& format, const std::string& out,
                    double t0) {
  ExportJob job;
  job.model = &model;
  job.record = {{"settings", {{"model", a.str("model")}, {"method", "convert"}, {"format", format}}}};
  job.progress = !a.flag("quiet");
  export_model(format, job, out);
  const std::string file = gguf_output_file(model, gguf_format_mix(format), out);
  nlohmann::json record = {{"gguf", {{"file", file}, {"bytes", int64_t(fs::file_size(file))}}},
                           {"seconds_total", now_seconds() - t0}};
  if (a.flag("json")) return print_json(record);
  std::printf("output     %s (%s, converted without quantization)\n", file.c_str(), format.c_str());
  return 0;
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  Args a("quantize", quantize_flags(), argc, argv);
  if (a.help("quantize a model (RTN, optimized RTN, SignRound v1/V2) and export it")) return 0;
  apply_common(a);
  const double t0 = now_seconds();
  QuantizeOptions o = options_from_flags(a);
  const std::unique_ptr<Comm> comm = connect_ranks(a);
  const bool rank0 = !comm || comm->rank() == 0;  // the only writer
  o.comm = comm.get();
  o.data_shards = a.integer("data-shards", comm ? comm->world() : 1);
  SR_CHECK(o.data_shards >= 1, "--data_shards must be >= 1, got ", o.data_shards);
  SR_CHECK(!comm || o.data_shards == comm->world(), "--data_shards (", o.data_shards, ") must equal --world_size (",
           comm ? comm->world() : 1, ") in a data-parallel run");
  o.progress = o.progress && rank0;
  const bool dry_run = a.flag("dry-run");
  const std::string out_dir = dry_run ? a.str("output-dir") : a.required("output-dir");
  std::vector<std::string> formats = a.list("format");
  if (formats.empty()) formats = {"fake"};
  for (std::string& f : formats) {
    SR_CHECK(is_export_format(f), "--format ", f, " is not supported (supported: ", export_format_list(), ")");
    if (is_gguf_format(f)) f = "gguf:" + std::string(gguf_mix_info(gguf_format_mix(f)).name);  // canonical case
  }
  const std::string gguf = gguf_target_of(formats);
  const GgufTypeControls controls = type_controls_from_flags(a);
  check_tensor_flags(a, gguf, controls);
  const bool overwrite = a.flag("overwrite");
  const bool gguf_file = formats.size() == 1 && !gguf.empty() && is_gguf_path(out_dir);
  if (!dry_run && rank0) check_output_path(out_dir, a.required("model"), gguf_file, overwrite);
  if (overwrite && !dry_run) {
    AtomicPath::allow_replacing(out_dir);
    for (const std::string& f : formats) AtomicPath::allow_replacing(format_dir(out_dir, f, formats.size()));
  }
  SR_CHECK(o.calib.nsamples > 0, "--nsamples must be > 0, got ", o.calib.nsamples);
  SR_CHECK(o.calib.seqlen > 0, "--seqlen must be > 0, got ", o.calib.seqlen);
  SR_CHECK(o.tune.method == Method::Rtn || o.calib.seqlen >= 2, "--seqlen must be at least 2 for calibration, got ",
           o.calib.seqlen);
  const std::string state_dir = out_dir + ".partial";
  SR_CHECK(dry_run || o.resume || !rank0 || !has_unfinished_run(state_dir), "[quantize] ", state_dir,
           " holds an unfinished run; pass --resume to continue it, or delete the folder");
  auto model = open_model(a, a.required("model"), o.tune.method != Method::Rtn || !gguf.empty());
  map_large_blocks(sample_activation_bytes(model->config().n_heads, model->config().intermediate, o.calib.seqlen));
  if (!gguf.empty() && is_gguf_float_mix(gguf_format_mix(gguf))) {
    SR_CHECK(!dry_run && !controls.any(), "--format ", gguf, " converts the model without quantizing: --dry_run and "
             "the per-tensor type controls do not apply");
    SR_CHECK(formats.size() == 1, "--format ", gguf, " converts the model without quantizing; export other formats "
             "in a separate run");
    return convert_to_gguf(a, *model, gguf, out_dir, t0);
  }
  SR_CHECK(o.nblocks >= 1 && o.nblocks <= model->config().n_layers, "--nblocks must be in [1, ",
           model->config().n_layers, "], got ", o.nblocks);
  Importances given, collected;
  imatrix_options(a, *model, o, given, collected);
  const TuningRecipe recipe = tuning_recipe(o, a.str("imatrix"));
  // A GGUF file is planned once, here: the mix's types and the per-tensor controls, the layer
  // plan's overrides on top.
  std::optional<GgufTarget> target;
  if (!gguf.empty()) {
    // With --imatrix, a very-low-bit tensor the file has no entry for is refused now, as
    // llama-quantize does, not after the tuning.
    std::set<std::string> covered;
    if (o.imatrix)
      for (const auto& [name, entry] : imatrix_file_of(given, model->config(), model->block_descs()).entries)
        covered.insert(name);
    target = plan_gguf_target(model->config(), gguf_format_mix(gguf), o.tune.method != Method::Rtn, controls,
                              o.imatrix ? &covered : nullptr);
  }
  nlohmann::json autoscheme;  // with --avg_bits: the allocation, whose schemes replace --layer_config
  std::map<std::string, QuantScheme> allocated;
  if (searches(a))
    allocated = autoscheme_layer_schemes(*model, a, autoscheme, target ? file_target_bits(a, *model, *target, recipe) : 0,
                                         o.imatrix, comm.get());
  const std::string layer_config = searches(a) ? std::string() : a.str("layer-config");
  PlanOptions po = target ? gguf_plan_options(a, *model, gguf, layer_config, *target)
                          : PlanOptions{scheme_from_flags(a), layer_config, a.flag("quant-lm-head"), {}};
  po.layer_schemes = std::move(allocated);
  LayerPlan plan = make_layer_plan(*model, po);
  if (target) settle_gguf_target(*target, plan, gguf);
  if (dry_run) return print_dry_run(a, *model, *target, recipe, gguf_output_file(*model, target->mix, out_dir));
  SR_CHECK(o.tune.method == Method::Rtn || !o.calib.dataset.empty() || (o.tune.method == Method::OptRtn && o.imatrix),
           "--dataset is required for optimized RTN (unless given --imatrix) and SignRound (e.g. "
           "../shared/data/calib_stories.txt); for data-free RTN pass --iters 0 --disable_opt_rtn");
  for (const std::string& f : formats) check_export_plan(f, plan, o.tune.method != Method::Rtn);
  nlohmann::json settings = settings_json(o, recipe, a.str("model"), plan);
  if (o.imatrix) settings["imatrix"] = fs::absolute(a.str("imatrix")).string();
  if (o.data_shards > 1) settings["data_shards"] = o.data_shards;
  nlohmann::json record = run_quantization(*model, plan, o, state_dir, settings);
  if (!rank0) return 0;  // rank 0 exports what every rank computed
  if (o.collected_imatrix) save_imatrix(a.str("save-imatrix"), collected, *model, o, record);
  record["settings"] = settings;
  record["average_bits"] = plan.average_bits();
  if (!autoscheme.empty()) record["autoscheme"] = autoscheme;
  ExportJob job;
  job.model = model.get();
  job.plan = &plan;
  job.block_layers = [&](int64_t b) { return load_saved_block(state_dir, b); };
  job.head_layers = load_saved_head(state_dir);
  job.imatrix = load_saved_head_imatrix(state_dir);
  job.max_shard_bytes = uint64_t(a.integer("max-shard-size", 0)) << 20;
  job.gguf = target ? &*target : nullptr;
  job.recipe = recipe;
  job.progress = o.progress;
  if (formats.size() > 1) {  // the parent of the per-format folders is an output too
    fs::create_directories(out_dir);
    std::ofstream(fs::path(out_dir) / kOutputMarker) << "written by signround; a later run may replace this folder\n";
  }
  for (const std::string& f : formats) {
    const double te = now_seconds();
    job.record = record;
    const std::string dir = format_dir(out_dir, f, formats.size());
    export_model(f, job, dir);
    record["export_seconds"][f] = now_seconds() - te;
    if (is_gguf_format(f)) {
      const std::string file = gguf_output_file(*model, gguf_format_mix(f), dir);
      const auto bytes = int64_t(fs::file_size(file));
      record["gguf"] = {{"file", file}, {"bytes", bytes},
                        {"bits_per_weight", 8.0 * double(bytes) / double(model->parameter_count())}};
    }
  }
  fs::remove_all(state_dir);
  record["seconds_total"] = now_seconds() - t0;
  record["peak_rss_bytes"] = peak_rss_bytes();
  if (a.flag("json")) return print_json(record);
  std::printf("output     %s (%s)\n", out_dir.c_str(), a.str("format", "fake").c_str());
  std::printf("method     %s, %lld of %zu layers quantized, %.3f bits/weight (spec 4.3)\n",
              settings["method"].get<std::string>().c_str(), (long long)plan.quantized_count(), plan.layers.size(),
              plan.average_bits());
  if (record.contains("gguf"))
    std::printf("gguf       %s: %lld bytes, %.3f bits/weight (file bytes over parameters)\n",
                record["gguf"]["file"].get<std::string>().c_str(), (long long)record["gguf"]["bytes"].get<int64_t>(),
                record["gguf"]["bits_per_weight"].get<double>());
  std::printf("time       %s, peak memory %s\n", format_duration(record["seconds_total"].get<double>()).c_str(),
              format_bytes(double(record["peak_rss_bytes"].get<int64_t>())).c_str());
  return 0;
}

}  // namespace sr::cli
