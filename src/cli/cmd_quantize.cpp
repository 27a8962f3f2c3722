// signround quantize: RTN, optimized RTN or SignRound (v1 / V2) block by block,
// then export in the requested formats. Flags follow auto-round's names
// (underscores or dashes both work).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/autoscheme_flags.h"
#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/strings.h"
#include "common/sysinfo.h"
#include "export/export_job.h"
#include "export/gguf_target.h"
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
      {"bits", true, "override the scheme's weight bits", ""},
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
      {"nsamples", true, "calibration samples", "128"},
      {"seqlen", true, "tokens per calibration sample (capped at the model's context)", "2048"},
      {"seed", true, "random seed (sample choice, mini-batch order)", "42"},
      {"cache-dtype", true, "fp32 | bf16 storage of the activation caches", "fp32"},
      {"max-shard-size", true, "split safetensors outputs into shards of at most this many MB", "0 (one file)"},
      {"overwrite", false, "replace a non-empty --output_dir that signround did not write (or an existing .gguf file)", ""},
      {"resume", false, "continue an interrupted run from <output_dir>.partial", ""},
      {"stop-after-units", true, "testing aid: stop (as if killed) after this many units", ""},
      {"json", false, "print the run record as JSON", ""},
      {"quiet", false, "no progress on stderr", ""},
      // Mixed precision (--avg_bits): the search runs first and its layer config is quantized.
      {"autoscheme-nsamples", true, "with --avg_bits: DeltaLoss calibration samples", "16"},
      {"autoscheme-seqlen", true, "with --avg_bits: DeltaLoss tokens per sample", "256"},
      {"autoscheme-batch-size", true, "with --avg_bits: DeltaLoss samples per forward/backward", "8"},
  };
  auto as = autoscheme_common_flags();
  f.insert(f.end(), as.begin(), as.end());
  return f;
}

bool scheme_flags_given(const Args& a) {
  for (const char* f : {"scheme", "bits", "group-size", "sym", "asym", "data-type", "act-bits"})
    if (a.has(f)) return true;
  return false;
}

QuantScheme scheme_from_flags(const Args& a) {
  QuantScheme s = parse_scheme(a.str("scheme", "W4A16"));
  if (a.has("data-type")) s.data_type = parse_data_type(a.str("data-type"), int(a.integer("bits", s.bits)));
  if (a.has("bits")) s.bits = int(a.integer("bits", s.bits));
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
  const std::string cache = a.str("cache-dtype", "fp32");
  SR_CHECK(cache == "fp32" || cache == "bf16" || cache == "float32" || cache == "bfloat16",
           "--cache_dtype must be fp32 or bf16, got '", cache, "'");
  o.cache_bf16 = cache == "bf16" || cache == "bfloat16";
  o.resume = a.flag("resume");
  o.stop_after_units = a.integer("stop-after-units", -1);
  o.progress = !a.flag("quiet");
  return o;
}

// What the exports record of how the run tuned (export/export_job.h).
TuningRecipe tuning_recipe(const QuantizeOptions& o) {
  const TuneOptions& t = o.tune;
  TuningRecipe r;
  r.method = t.method == Method::Rtn ? "rtn" : t.method == Method::OptRtn ? "opt_rtn"
             : t.alg_ext ? "signround_v2" : "signround_v1";
  r.iters = t.iters, r.lr = t.lr, r.minmax_lr = t.minmax_lr;
  r.batch_size = t.batch_size, r.gradient_accumulate_steps = t.gradient_accumulate_steps;
  r.nsamples = o.calib.nsamples, r.seqlen = o.calib.seqlen, r.seed = t.seed, r.dataset = o.calib.dataset;
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
          {"enable_quanted_input", r.enable_quanted_input}, {"cache_bf16", o.cache_bf16}, {"threads", threads()}};
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
  po.layer_defaults = gguf_layer_defaults(target, model.block_desc(), model.config().n_layers);
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

// --format gguf:f32 / f16 / bf16: the model converted as it is, nothing tuned (a Python-free
// convert_hf_to_gguf.py); the quantization flags do not apply.
int convert_to_gguf(const Args& a, const Model& model, const std::string& format, const std::string& out,
                    double t0) {
  ExportJob job;
  job.model = &model;
  job.record = {{"settings", {{"model", a.str("model")}, {"method", "convert"}, {"format", format}}}};
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
  const std::string out_dir = a.required("output-dir");
  std::vector<std::string> formats = a.list("format");
  if (formats.empty()) formats = {"fake"};
  for (std::string& f : formats) {
    SR_CHECK(is_export_format(f), "--format ", f, " is not supported (supported: ", export_format_list(), ")");
    if (is_gguf_format(f)) f = "gguf:" + std::string(gguf_mix_info(gguf_format_mix(f)).name);  // canonical case
  }
  const std::string gguf = gguf_target_of(formats);
  const bool overwrite = a.flag("overwrite");
  const bool gguf_file = formats.size() == 1 && !gguf.empty() && is_gguf_path(out_dir);
  check_output_path(out_dir, a.required("model"), gguf_file, overwrite);
  if (overwrite) {
    AtomicPath::allow_replacing(out_dir);
    for (const std::string& f : formats) AtomicPath::allow_replacing(format_dir(out_dir, f, formats.size()));
  }
  SR_CHECK(o.calib.nsamples > 0, "--nsamples must be > 0, got ", o.calib.nsamples);
  SR_CHECK(o.calib.seqlen > 0, "--seqlen must be > 0, got ", o.calib.seqlen);
  SR_CHECK(o.tune.method == Method::Rtn || o.calib.seqlen >= 2, "--seqlen must be at least 2 for calibration, got ",
           o.calib.seqlen);
  const std::string state_dir = out_dir + ".partial";
  SR_CHECK(o.resume || !has_unfinished_run(state_dir), "[quantize] ", state_dir,
           " holds an unfinished run; pass --resume to continue it, or delete the folder");
  auto model = open_model(a, a.required("model"), o.tune.method != Method::Rtn || !gguf.empty());
  if (!gguf.empty() && is_gguf_float_mix(gguf_format_mix(gguf))) {
    SR_CHECK(formats.size() == 1, "--format ", gguf, " converts the model without quantizing; export other formats "
             "in a separate run");
    return convert_to_gguf(a, *model, gguf, out_dir, t0);
  }
  SR_CHECK(o.nblocks >= 1 && o.nblocks <= model->config().n_layers, "--nblocks must be in [1, ",
           model->config().n_layers, "], got ", o.nblocks);
  nlohmann::json autoscheme;  // with --avg_bits: the allocation, whose schemes replace --layer_config
  std::map<std::string, QuantScheme> allocated;
  if (a.has("avg-bits")) allocated = autoscheme_layer_schemes(*model, a, autoscheme);
  const std::string layer_config = a.has("avg-bits") ? std::string() : a.str("layer-config");
  // A GGUF file is planned once, here: the mix's types, the layer plan's overrides on top.
  std::optional<GgufTarget> target;
  if (!gguf.empty()) target = plan_gguf_target(model->config(), gguf_format_mix(gguf), o.tune.method != Method::Rtn);
  PlanOptions po = target ? gguf_plan_options(a, *model, gguf, layer_config, *target)
                          : PlanOptions{scheme_from_flags(a), layer_config, a.flag("quant-lm-head"), {}};
  po.layer_schemes = std::move(allocated);
  LayerPlan plan = make_layer_plan(*model, po);
  if (target) settle_gguf_target(*target, plan, gguf);
  SR_CHECK(o.tune.method == Method::Rtn || !o.calib.dataset.empty(), "--dataset is required for optimized RTN and "
           "SignRound (e.g. ../shared/data/calib_stories.txt); for data-free RTN pass --iters 0 --disable_opt_rtn");
  for (const std::string& f : formats) check_export_plan(f, plan, o.tune.method != Method::Rtn);
  const TuningRecipe recipe = tuning_recipe(o);
  nlohmann::json settings = settings_json(o, recipe, a.str("model"), plan);
  nlohmann::json record = run_quantization(*model, plan, o, state_dir, settings);
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
