#include "tune/pipeline.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/json_parse.h"
#include "common/progress.h"
#include "common/sysinfo.h"
#include "model/tensor_convert.h"

namespace sr {
namespace fs = std::filesystem;

int64_t cache_bytes(int64_t n, int64_t t, int64_t d, bool bf16) { return 2 * n * t * d * (bf16 ? 2 : 4); }

namespace {

std::string block_file(const std::string& dir, int64_t b) {
  char name[64];
  std::snprintf(name, sizeof name, "block_%05lld.safetensors", (long long)b);
  return (fs::path(dir) / name).string();
}

// The two activation caches and what every unit needs to see of the data.
struct Caches {
  at::Tensor x_fp, x_q;  // [N, T, D]
  at::Tensor mask;       // [N, T]
  bool active() const { return x_fp.defined(); }
};

// Rows per forward call: keeps one call's activations near 256 MB.
int64_t rows_per_call(const ModelConfig& c, int64_t T) {
  const int64_t per_row = 4 * (c.n_heads * T * T + T * (3 * c.intermediate + 4 * c.hidden));
  return std::max<int64_t>(1, (256LL << 20) / std::max<int64_t>(per_row, 1));
}

// x <- unit(x) in place, call by call. `observe` sees each block's projection inputs.
void forward_in_place(const ModelConfig& c, at::Tensor& x, const std::vector<BlockWeights>& w,
                      const std::vector<InputHook>& hooks, const RopeTables& rope) {
  at::NoGradGuard ng;
  const int64_t N = x.size(0), step = rows_per_call(c, x.size(1));
  for (int64_t r = 0; r < N; r += step) {
    const int64_t b = std::min(step, N - r);
    auto slice = x.narrow(0, r, b);
    slice.copy_(unit_forward(c, w, hooks, slice.to(at::kFloat), rope));
  }
}

// FP reference pass hooks: Σx² per input channel (imatrix, §3.2) and max|x| (act_max).
struct Observer {
  std::map<std::string, at::Tensor> imatrix, act_max;
  std::map<std::string, int64_t> tokens;  // rows each input had (a MoE expert sees its routed tokens)
  InputHook hook_for(int64_t block, const LayerPlan& plan) {
    return [this, block, &plan](int i, const at::Tensor& x) {
      const LayerChoice* c = plan.find(block, i);
      if (!c || !c->quantized()) return x;
      auto flat = x.detach().reshape({-1, x.size(-1)});
      auto sq = flat.pow(2).sum(0);
      tokens[c->name] += flat.size(0);
      auto& im = imatrix[c->name];
      im = im.defined() ? im + sq : sq;
      auto mx = flat.abs().max();
      auto& am = act_max[c->name];
      am = am.defined() ? at::maximum(am, mx) : mx;
      return x;
    };
  }
};

std::string head_imatrix_file(const std::string& dir) { return (fs::path(dir) / "head_imatrix.safetensors").string(); }

// Σ over tokens of (final_norm(x))², x [N, T, D] the FP model's last hidden states.
at::Tensor head_sum_sq(const Model& model, const at::Tensor& x) {
  at::NoGradGuard ng;
  const ModelConfig& c = model.config();
  at::Tensor sum = at::zeros({c.hidden}, at::kFloat);
  for (int64_t r = 0; r < x.size(0); r += 16) {
    auto h = rms_norm(x.narrow(0, r, std::min<int64_t>(16, x.size(0) - r)).to(at::kFloat), model.final_norm(), c.rms_eps);
    sum += h.reshape({-1, c.hidden}).pow(2).sum(0);
  }
  return sum;
}

// lm_head's imatrix for the exporters (load_saved_head_imatrix): the given one, or the mean of
// x² over the calibration tokens; none for tied embeddings or without either.
void save_head_imatrix(const Model& model, const QuantizeOptions& opt, const Caches& caches, const std::string& dir) {
  at::Tensor mean;
  if (caches.active() && !model.config().tie_embeddings) {  // caches.x_fp: the FP model's last hidden states
    const int64_t tokens = caches.x_fp.size(0) * caches.x_fp.size(1);
    const at::Tensor sum = head_sum_sq(model, caches.x_fp);
    mean = sum / double(tokens);
    if (opt.collected_imatrix) (*opt.collected_imatrix)["lm_head"] = {sum, tokens};
  }
  if (opt.imatrix) {
    auto it = opt.imatrix->find("lm_head");
    mean = it == opt.imatrix->end() ? at::Tensor() : importance_mean(it->second);
  }
  if (mean.defined()) save_tensors(head_imatrix_file(dir), {{"lm_head", mean}});
}

std::string head_file(const std::string& dir) { return (fs::path(dir) / "lm_head.safetensors").string(); }

// §2.7: lm_head after all blocks, on the final hidden states of both paths (normed
// in place: the caches are not needed any more).
nlohmann::json quantize_lm_head(const Model& model, const LayerPlan& plan, const QuantizeOptions& opt, Caches& caches,
                                const std::string& state_dir) {
  const std::string file = head_file(state_dir);
  if (opt.resume && fs::exists(file)) return {{"layer", "lm_head"}, {"resumed", true}};
  HeadInput in;
  in.weight = model.lm_head();
  if (caches.active()) {
    at::NoGradGuard ng;
    const double eps = model.config().rms_eps;
    for (at::Tensor* x : {&caches.x_fp, &caches.x_q})
      for (int64_t r = 0; r < x->size(0); ++r) {
        auto row = x->narrow(0, r, 1);
        row.copy_(rms_norm(row.to(at::kFloat), model.final_norm(), eps));
      }
    auto flat = caches.x_fp.reshape({-1, caches.x_fp.size(-1)}).to(at::kFloat);
    in.imatrix = flat.pow(2).sum(0);
    in.act_max = flat.abs().max();
    in.x_fp = caches.x_fp;
    in.x_q = caches.x_q;
    in.mask = caches.mask;
  }
  if (opt.imatrix) {
    auto it = opt.imatrix->find("lm_head");
    in.imatrix = it == opt.imatrix->end() ? at::Tensor() : it->second.sum_sq;
    in.tokens = it == opt.imatrix->end() ? -1 : it->second.tokens;
  }
  UnitResult r = quantize_head(plan, in, opt.tune);
  save_block_state(file, r.layers, r.stats);
  std::fprintf(stderr, "lm_head  %s  %.1fs\n", r.stats.value("method", "").c_str(), r.stats["seconds"].get<double>());
  return r.stats;
}

// Before anything is written: an unfinished run in `dir` must be resumed with the same
// settings. Returns true when `dir` holds one (its run.json matches `fp`).
bool check_fingerprint(const std::string& dir, const nlohmann::json& fp, bool resume) {
  if (!has_unfinished_run(dir)) return false;
  const fs::path run = fs::path(dir) / "run.json";
  SR_CHECK(resume, "[quantize] ", dir, " holds an unfinished run; set resume to continue it, or delete the folder");
  nlohmann::json old;
  try {
    old = read_json_file(run.string());
  } catch (const Error& e) {
    fail("[quantize] resume: ", e.what(), "; delete ", dir, " to start over");
  }
  SR_CHECK(old == fp, "[quantize] resume: the unfinished run in ", dir,
           " used different settings; delete the folder to start over.\n  saved: ", old.dump(),
           "\n  now:   ", fp.dump());
  return true;
}

// The first byte a run writes: only after every argument and input has been checked,
// so a usage error leaves no <out>.partial behind.
void write_fingerprint(const std::string& dir, const nlohmann::json& fp) {
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "run.json") << fp.dump(2);
}

}  // namespace

bool has_unfinished_run(const std::string& state_dir) { return fs::exists(fs::path(state_dir) / "run.json"); }

std::vector<QuantizedLayer> load_saved_head(const std::string& state_dir) {
  const std::string f = head_file(state_dir);
  return fs::exists(f) ? load_block_state(f) : std::vector<QuantizedLayer>{};
}

std::vector<QuantizedLayer> load_saved_block(const std::string& state_dir, int64_t b) {
  const std::string f = block_file(state_dir, b);
  return fs::exists(f) ? load_block_state(f) : std::vector<QuantizedLayer>{};
}

std::map<std::string, at::Tensor> load_saved_head_imatrix(const std::string& state_dir) {
  std::map<std::string, at::Tensor> out;
  if (!fs::exists(head_imatrix_file(state_dir))) return out;
  for (auto& [name, t] : load_tensors(head_imatrix_file(state_dir))) out[name] = t;
  return out;
}

namespace {

// The calibration tokens: given (QuantizeOptions::calib_tokens), or read and tokenized from the
// dataset, at most as long as the model's context.
CalibData calibration_data(const Model& model, const QuantizeOptions& opt) {
  CalibOptions co = opt.calib;
  const int64_t max_position = model.config().max_position;
  if (opt.calib_tokens.defined()) {
    CalibData data;
    data.tokens = opt.calib_tokens.to(at::kLong);
    data.mask = at::ones(data.tokens.sizes(), at::kBool);
    data.mask.select(1, data.tokens.size(1) - 1).fill_(false);
    data.mode = "given";
    data.available = data.tokens.size(0);
    return data;
  }
  if (co.seqlen > max_position) {
    std::fprintf(stderr, "note: seqlen %lld exceeds the model's %lld positions; using %lld\n", (long long)co.seqlen,
                 (long long)max_position, (long long)max_position);
    co.seqlen = max_position;
  }
  return load_calibration(model.tokenizer(), co);
}

// Everything but plain RTN calibrates, except optimized RTN that is given its imatrix and no
// calibration data.
bool needs_calibration(const QuantizeOptions& opt) {
  if (opt.tune.method == Method::Rtn) return false;
  const bool data = !opt.calib.dataset.empty() || opt.calib_tokens.defined();
  return opt.tune.method == Method::SignRound || !opt.imatrix || data;
}

// X_fp = X_q = the calibration tokens' embeddings, once they are known to fit in memory; their
// summary goes into record["calibration"].
Caches make_caches(const Model& model, const CalibData& data, const QuantizeOptions& opt, nlohmann::json& record) {
  const int64_t N = data.tokens.size(0), T = data.tokens.size(1);
  const int64_t need = cache_bytes(N, T, model.config().hidden, opt.cache_bf16);
  const int64_t avail = available_memory_bytes();
  if (opt.progress)
    std::fprintf(stderr, "calibration: %lld samples x %lld tokens (%s); activation caches %s%s\n", (long long)N,
                 (long long)T, data.mode.c_str(), format_bytes(double(need)).c_str(), opt.cache_bf16 ? " (bf16)" : "");
  SR_CHECK(avail == 0 || need < avail * 8 / 10, "[quantize] the activation caches need ", format_bytes(double(need)),
           " but only ", format_bytes(double(avail)), " is available; lower nsamples or seqlen, or cache in bf16 (cache_bf16)");
  at::NoGradGuard ng;
  Caches caches;
  caches.x_fp = model.embed(data.tokens).to(opt.cache_bf16 ? at::kBFloat16 : at::kFloat);
  caches.x_q = caches.x_fp.clone();
  caches.mask = data.mask;
  record["calibration"] = {{"samples", N}, {"seqlen", T}, {"mode", data.mode}, {"available", data.available},
                           {"cache_bytes", need}};
  return caches;
}

// The FP weights of unit u's blocks.
UnitInput load_unit(const Model& model, int64_t u, int64_t nblocks) {
  UnitInput in;
  for (int64_t b = u * nblocks; b < std::min(model.config().n_layers, (u + 1) * nblocks); ++b) {
    in.blocks.push_back(b);
    in.fp.push_back(model.load_block(b));
  }
  return in;
}

// Resume: a unit whose every block is saved is replayed from its state, not re-tuned.
bool unit_saved(const UnitInput& in, const std::string& state_dir, bool resume) {
  bool saved = resume;
  for (int64_t b : in.blocks) saved = saved && fs::exists(block_file(state_dir, b));
  return saved;
}

UnitResult replay_saved_unit(const LayerPlan& plan, const UnitInput& in, const std::string& state_dir) {
  UnitResult res;
  res.quantized = in.fp;
  for (size_t j = 0; j < in.blocks.size(); ++j)
    for (QuantizedLayer& l : load_saved_block(state_dir, in.blocks[j])) {
      const LayerChoice* ch = plan.find(l.name);
      SR_CHECK(ch, "[quantize] saved layer ", l.name, " is not in the plan");
      res.quantized[j].weight(ch->linear) =
          decode_saved_layer(l, ch->scheme, ch->out, ch->in, block_file(state_dir, in.blocks[j]));
      res.layers.push_back(std::move(l));
    }
  res.stats = {{"blocks", in.blocks}, {"resumed", true}};
  return res;
}

// The unit's FP pass: caches.x_fp becomes its reference output Y_ref; unless the unit is
// replayed (and no imatrix is being collected), its linears' imatrix and act_max are observed
// on the way. Hands the unit its inputs.
void reference_pass(const ModelConfig& c, const LayerPlan& plan, const QuantizeOptions& opt, Caches& caches,
                    UnitInput& in, bool saved, const RopeTables& rope) {
  if (!opt.enable_quanted_input) caches.x_q.copy_(caches.x_fp);
  Observer obs;
  std::vector<InputHook> observe;
  const bool observing = !saved || opt.collected_imatrix;
  for (int64_t b : in.blocks) observe.push_back(observing ? obs.hook_for(b, plan) : InputHook());
  forward_in_place(c, caches.x_fp, in.fp, observe, rope);
  if (opt.collected_imatrix)
    for (const auto& [name, sum] : obs.imatrix) (*opt.collected_imatrix)[name] = {sum, obs.tokens[name]};
  in.imatrix = std::move(obs.imatrix);
  in.act_max = std::move(obs.act_max);
  in.tokens = std::move(obs.tokens);
  in.x_in = caches.x_q;
  in.y_ref = caches.x_fp;
  in.mask = caches.mask;
}

// The given imatrix in place of the collected one, for every quantized layer of the unit.
void use_given_imatrix(const LayerPlan& plan, const Importances& given, UnitInput& in) {
  for (int64_t b : in.blocks)
    for (int i = 0; i < int(plan.blocks[b].linears.size()); ++i) {
      const LayerChoice* c = plan.find(b, i);
      if (!c || !c->quantized()) continue;
      in.imatrix.erase(c->name);
      in.tokens.erase(c->name);
      if (auto it = given.find(c->name); it != given.end()) {
        in.imatrix[c->name] = it->second.sum_sq;
        in.tokens[c->name] = it->second.tokens;
      }
    }
}

// Quantizes the unit and saves each of its blocks' state.
UnitResult quantize_and_save(const ModelConfig& c, const LayerPlan& plan, const UnitInput& in, const RopeTables& rope,
                             const QuantizeOptions& opt, const std::string& state_dir) {
  UnitResult res = quantize_unit(c, plan, in, rope, opt.tune);
  std::map<int64_t, std::vector<QuantizedLayer>> per_block;
  for (const QuantizedLayer& l : res.layers) per_block[plan.find(l.name)->block].push_back(l);
  for (int64_t b : in.blocks) save_block_state(block_file(state_dir, b), per_block[b], res.stats);
  return res;
}

// X_q for the next unit: the quantized unit, with its activation quantization, on X_q.
void advance_quantized_input(const ModelConfig& c, const LayerPlan& plan, const UnitInput& in, const UnitResult& res,
                             Caches& caches, const RopeTables& rope) {
  std::map<std::string, ActQuantState> act;
  for (const QuantizedLayer& l : res.layers) act[l.name] = l.act;
  std::vector<InputHook> hooks;
  for (int64_t b : in.blocks) hooks.push_back(activation_hook(plan, b, act));
  forward_in_place(c, caches.x_q, res.quantized, hooks, rope);
}

// The progress line's text for a finished unit.
std::string unit_summary(const nlohmann::json& stats, bool saved, double seconds) {
  char text[160] = "";
  if (stats.contains("loss_best"))
    std::snprintf(text, sizeof text, "loss %.4g -> %.4g (iter %lld)  %.1fs", stats["loss_first"].get<double>(),
                  stats["loss_best"].get<double>(), (long long)stats["best_iter"].get<int64_t>(), seconds);
  else
    std::snprintf(text, sizeof text, "%s  %.1fs", saved ? "resumed" : stats.value("method", "").c_str(), seconds);
  return text;
}

}  // namespace

nlohmann::json run_quantization(const Model& model, const LayerPlan& plan, const QuantizeOptions& opt,
                                const std::string& state_dir, const nlohmann::json& fingerprint) {
  const ModelConfig& c = model.config();
  const double t_start = now_seconds();
  const bool resuming = check_fingerprint(state_dir, fingerprint, opt.resume);
  SR_CHECK(opt.nblocks >= 1 && opt.nblocks <= c.n_layers, "[quantize] nblocks must be in [1, ", c.n_layers, "], got ", opt.nblocks);
  SR_CHECK(opt.tune.batch_size >= 1 && opt.tune.gradient_accumulate_steps >= 1,
           "[quantize] batch_size and gradient_accumulate_steps must be positive, got ", opt.tune.batch_size, " and ",
           opt.tune.gradient_accumulate_steps);
  nlohmann::json record = {{"units", nlohmann::json::array()}};
  Caches caches;
  if (needs_calibration(opt)) caches = make_caches(model, calibration_data(model, opt), opt, record);
  if (!resuming) write_fingerprint(state_dir, fingerprint);  // every input checked: the first byte written
  const RopeTables& rope = model.rope(caches.active() ? caches.x_fp.size(1) : 1);
  const int64_t n_units = (c.n_layers + opt.nblocks - 1) / opt.nblocks;
  Progress progress("block", int(c.n_layers), opt.progress);
  for (int64_t u = 0; u < n_units; ++u) {
    const double t0 = now_seconds();
    UnitInput in = load_unit(model, u, opt.nblocks);
    const bool saved = unit_saved(in, state_dir, opt.resume);
    UnitResult res;
    if (saved) res = replay_saved_unit(plan, in, state_dir);
    if (caches.active()) reference_pass(c, plan, opt, caches, in, saved, rope);
    if (opt.imatrix) use_given_imatrix(plan, *opt.imatrix, in);
    if (!saved) res = quantize_and_save(c, plan, in, rope, opt, state_dir);
    if (caches.active()) advance_quantized_input(c, plan, in, res, caches, rope);
    res.stats["seconds_total"] = now_seconds() - t0;
    record["units"].push_back(res.stats);
    progress.update(int(in.blocks.back() + 1), unit_summary(res.stats, saved, now_seconds() - t0));
    SR_CHECK(opt.stop_after_units < 0 || u + 1 < opt.stop_after_units, "[quantize] stopped after ", u + 1,
             " units as asked (stop_after_units); continue with resume");
  }
  save_head_imatrix(model, opt, caches, state_dir);
  if (const LayerChoice* head = plan.find("lm_head"); head && head->quantized())
    record["lm_head"] = quantize_lm_head(model, plan, opt, caches, state_dir);
  record["seconds"] = now_seconds() - t_start;
  record["peak_rss_bytes"] = peak_rss_bytes();
  return record;
}

}  // namespace sr
