#include "tune/pipeline.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

#include <unistd.h>

#include "common/amp.h"
#include "common/error.h"
#include "common/json_parse.h"
#include "common/progress.h"
#include "common/sysinfo.h"
#include "model/tensor_convert.h"

namespace sr {
namespace fs = std::filesystem;

int64_t cache_bytes(int64_t n, int64_t t, int64_t d, bool bf16) { return 2 * n * t * d * (bf16 ? 2 : 4); }

int64_t cache_memory_budget(int64_t given) {
  if (given > 0) return given;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  const int64_t physical = pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : 0;
  const int64_t avail = available_memory_bytes();
  int64_t budget = physical > 0 ? physical / 4 : std::numeric_limits<int64_t>::max();
  if (avail > 0) budget = std::min(budget, avail * 8 / 10);
  return budget;
}

namespace {

std::string block_file(const std::string& dir, int64_t b) {
  char name[64];
  std::snprintf(name, sizeof name, "block_%05lld.safetensors", (long long)b);
  return (fs::path(dir) / name).string();
}

// The two activation caches and what every unit needs to see of the data: the rows of the
// shards this process holds (QuantizeOptions::data_shards), one after another.
struct Caches {
  ActivationCache x_fp, x_q;  // [n, T, D], n = local * shard_rows
  at::Tensor mask;            // [n, T]
  int64_t shard_rows = 0, local = 1;
  int64_t samples = 0;        // N over all ranks
  bool active() const { return x_fp.defined(); }
  // Shard k of the local ones (rows of x): x itself for one, else a view (make_caches keeps
  // several local shards in memory).
  ActivationCache shard(const ActivationCache& x, int64_t k) const {
    return local == 1 ? x : ActivationCache(x.all().narrow(0, k * shard_rows, shard_rows));
  }
};

// Every shard's sums (max for act_max) in shard order, then over the ranks: what one process
// holding every shard computes (tune/unit_quantizer.h, DataShards). Tensors keep their order and
// shapes; each must have the same shape and dtype on every rank.
void reduce_shards(std::vector<std::vector<at::Tensor>>& parts, const Comm* comm, Comm::Op op) {
  std::vector<at::Tensor>& acc = parts[0];
  for (size_t k = 1; k < parts.size(); ++k)
    for (size_t i = 0; i < acc.size(); ++i)
      acc[i] = op == Comm::Op::Sum ? acc[i] + parts[k][i] : at::maximum(acc[i], parts[k][i]);
  if (comm) comm->all_reduce(acc, op);
}

// Rows per forward call: keeps one call's activations near 256 MB.
int64_t rows_per_call(const ModelConfig& c, int64_t T) {
  const int64_t per_row = 4 * (c.n_heads * T * T + T * (3 * c.intermediate + 4 * c.hidden));
  return std::max<int64_t>(1, (256LL << 20) / std::max<int64_t>(per_row, 1));
}

// Called with the rows a pass has just finished (a pass's progress lines; may be empty).
using RowsDone = std::function<void(int64_t rows)>;

// x <- unit(x) in place, call by call. `observe` sees each block's projection inputs. Callers
// pass one shard at a time, so that calls never straddle shards (a rank sees only its own).
void forward_in_place(const ModelConfig& c, ActivationCache x, const std::vector<BlockWeights>& w,
                      const std::vector<InputHook>& hooks, const RopeTables& rope, const RowsDone& done = {}) {
  at::NoGradGuard ng;
  const int64_t N = x.size(0), step = rows_per_call(c, x.size(1));
  for (int64_t r = 0; r < N; r += step) {
    const int64_t b = std::min(step, N - r);
    x.write(r, unit_forward(c, w, hooks, x.read(r, b).to(at::kFloat), rope));
    if (done) done(b);
  }
}

// "block 1/36  FP pass 24/128  ETA 9m12s": what a long pass over the cached samples (minutes a
// block at 8B shapes and the defaults' 128 x 2048 tokens, before the first iteration) prints, the
// first line once it has run 10 s, then at most one every 30 s; a pass that takes less prints
// nothing. `total`: the samples this rank passes. Empty when `enabled` is false.
RowsDone pass_lines(bool enabled, const std::string& label, int64_t total) {
  if (!enabled) return {};
  auto progress = std::make_shared<Progress>(label, int(total));
  progress->pace(10, 30);
  return [progress, rows = std::make_shared<int64_t>(0)](int64_t n) { progress->update(int(*rows += n)); };
}

// "block 3/16": the unit's label on progress lines.
std::string unit_label(const UnitInput& in, int64_t n_layers) {
  return "block " + std::to_string(in.blocks.back() + 1) + "/" + std::to_string(n_layers);
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

// The shards' observations as one (Observer's sums summed, maxima maxed), over the ranks too.
// Every rank lists the unit's quantized layers in plan order, zeros for what it did not see; a
// layer no rank saw stays absent, as in a 1-process run.
Observer combine(std::vector<Observer>& parts, const LayerPlan& plan, const std::vector<int64_t>& blocks, const Comm* comm) {
  if (parts.size() == 1 && !comm) return std::move(parts[0]);
  std::vector<const LayerChoice*> layers;
  for (int64_t b : blocks)
    for (int i = 0; i < int(plan.blocks[b].linears.size()); ++i)
      if (const LayerChoice* c = plan.find(b, i); c && c->quantized()) layers.push_back(c);
  std::vector<std::vector<at::Tensor>> sums, maxima;
  for (Observer& o : parts) {
    std::vector<at::Tensor> s, m;
    at::Tensor tokens = at::zeros({int64_t(layers.size())}, at::kLong);
    for (size_t k = 0; k < layers.size(); ++k) {
      const std::string& n = layers[k]->name;
      auto im = o.imatrix.find(n);
      auto mx = o.act_max.find(n);
      s.push_back(im == o.imatrix.end() ? at::zeros({layers[k]->in}, at::kFloat) : im->second.to(at::kFloat));
      m.push_back(mx == o.act_max.end() ? at::zeros({}, at::kFloat) : mx->second.to(at::kFloat));
      tokens[int64_t(k)] = o.tokens.count(n) ? o.tokens[n] : 0;
    }
    s.push_back(tokens);
    sums.push_back(std::move(s));
    maxima.push_back(std::move(m));
  }
  reduce_shards(sums, comm, Comm::Op::Sum);
  reduce_shards(maxima, comm, Comm::Op::Max);
  Observer out;
  for (size_t k = 0; k < layers.size(); ++k) {
    const int64_t n = sums[0].back()[int64_t(k)].item<int64_t>();
    if (n == 0) continue;
    out.imatrix[layers[k]->name] = sums[0][k];
    out.act_max[layers[k]->name] = maxima[0][k];
    out.tokens[layers[k]->name] = n;
  }
  return out;
}

// Only rank 0 of a data-parallel run writes the state folder (the others compute the same).
bool writes_state(const QuantizeOptions& opt) { return !opt.comm || opt.comm->rank() == 0; }

std::string head_imatrix_file(const std::string& dir) { return (fs::path(dir) / "head_imatrix.safetensors").string(); }

// Σ over tokens of (final_norm(x))², x [N, T, D] the FP model's last hidden states.
at::Tensor head_sum_sq(const Model& model, const ActivationCache& x) {
  at::NoGradGuard ng;
  const ModelConfig& c = model.config();
  at::Tensor sum = at::zeros({c.hidden}, at::kFloat);
  for (int64_t r = 0; r < x.size(0); r += 16) {
    auto h = rms_norm(x.read(r, std::min<int64_t>(16, x.size(0) - r)).to(at::kFloat), model.final_norm(), c.rms_eps);
    sum += h.reshape({-1, c.hidden}).pow(2).sum(0);
  }
  return sum;
}

// lm_head's imatrix for the exporters (load_saved_head_imatrix): the given one, or the mean of
// x² over the calibration tokens; none for tied embeddings or without either.
void save_head_imatrix(const Model& model, const QuantizeOptions& opt, const Caches& caches, const std::string& dir) {
  at::Tensor mean;
  if (caches.active() && !model.config().tie_embeddings) {  // caches.x_fp: the FP model's last hidden states
    const int64_t tokens = caches.samples * caches.x_fp.size(1);
    std::vector<std::vector<at::Tensor>> parts;
    for (int64_t k = 0; k < caches.local; ++k) parts.push_back({head_sum_sq(model, caches.shard(caches.x_fp, k))});
    reduce_shards(parts, opt.comm, Comm::Op::Sum);
    const at::Tensor sum = parts[0][0];
    mean = sum / double(tokens);
    if (opt.collected_imatrix) (*opt.collected_imatrix)["lm_head"] = {sum, tokens};
  }
  if (opt.imatrix) {
    auto it = opt.imatrix->find("lm_head");
    mean = it == opt.imatrix->end() ? at::Tensor() : importance_mean(it->second);
  }
  if (mean.defined() && writes_state(opt)) save_tensors(head_imatrix_file(dir), {{"lm_head", mean}});
}

std::string head_file(const std::string& dir) { return (fs::path(dir) / "lm_head.safetensors").string(); }

// §2.7: lm_head after all blocks, on the final hidden states of both paths (normed
// in place: the caches are not needed any more).
nlohmann::json quantize_lm_head(const Model& model, const LayerPlan& plan, const QuantizeOptions& opt, Caches& caches,
                                const std::string& state_dir) {
  const std::string file = head_file(state_dir);
  if (rank0_says(opt.comm, writes_state(opt) && opt.resume && fs::exists(file)))
    return {{"layer", "lm_head"}, {"resumed", true}};
  HeadInput in;
  in.weight = model.lm_head();
  if (caches.active()) {
    at::NoGradGuard ng;
    const double eps = model.config().rms_eps;
    for (ActivationCache* x : {&caches.x_fp, &caches.x_q})
      for (int64_t r = 0; r < x->size(0); ++r) x->write(r, rms_norm(x->read(r, 1).to(at::kFloat), model.final_norm(), eps));
    std::vector<std::vector<at::Tensor>> sums, maxima;
    for (int64_t k = 0; k < caches.local; ++k) {
      // In memory at once; on disk sample by sample (the cache need not fit in memory).
      const ActivationCache x = caches.shard(caches.x_fp, k);
      const int64_t step = x.on_disk() ? 1 : x.size(0);
      at::Tensor sum, max;
      for (int64_t r = 0; r < x.size(0); r += step) {
        auto flat = x.read(r, step).reshape({-1, x.size(2)}).to(at::kFloat);
        sum = r == 0 ? flat.pow(2).sum(0) : sum + flat.pow(2).sum(0);
        max = r == 0 ? flat.abs().max() : at::maximum(max, flat.abs().max());
      }
      sums.push_back({sum});
      maxima.push_back({max});
    }
    reduce_shards(sums, opt.comm, Comm::Op::Sum);
    reduce_shards(maxima, opt.comm, Comm::Op::Max);
    in.imatrix = sums[0][0];
    in.act_max = maxima[0][0];
    in.tokens = caches.samples * caches.x_fp.size(1);
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
  if (writes_state(opt)) save_block_state(file, r.layers, r.stats);
  if (opt.progress) std::fprintf(stderr, "lm_head  %s  %.1fs\n", r.stats.value("method", "").c_str(), r.stats["seconds"].get<double>());
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

// Where the caches go when they spill: the given folder, else beside the run's state folder.
std::string spill_dir(const QuantizeOptions& opt, const std::string& state_dir) {
  if (!opt.cache_dir.empty()) return opt.cache_dir;
  const fs::path parent = fs::absolute(state_dir).parent_path();
  return parent.empty() ? "." : parent.string();
}

// X_fp = X_q = the calibration tokens' embeddings of this process's shards, in memory when both
// fit in the budget, else in files under spill_dir; their summary goes into record["calibration"].
// Several shards in one process (the reference of a data-parallel run) stay in memory, so that a
// shard is a view of the cache.
Caches make_caches(const Model& model, const CalibData& data, const QuantizeOptions& opt, const std::string& state_dir,
                   nlohmann::json& record) {
  const int64_t N = data.tokens.size(0), T = data.tokens.size(1), D = model.config().hidden, S = opt.data_shards;
  SR_CHECK(S >= 1 && N % S == 0, "[quantize] the calibration's ", N, " samples do not split into ", S,
           " equal shards (data_shards, one per rank); choose nsamples a multiple of ", S);
  SR_CHECK(!opt.comm || opt.comm->world() == S, "[quantize] data_shards (", S, ") must equal the number of ranks (",
           opt.comm ? opt.comm->world() : 1, ")");
  const int64_t local = opt.comm ? 1 : S, rows = local * (N / S);
  const int64_t need = cache_bytes(rows, T, D, opt.cache_bf16);
  const int64_t budget = cache_memory_budget(opt.cache_budget);
  const bool spill = need > budget && local == 1;
  const std::string dir = spill_dir(opt, state_dir);
  if (!opt.cache_dir.empty())
    SR_CHECK(fs::is_directory(opt.cache_dir) && ::access(opt.cache_dir.c_str(), W_OK) == 0, "[quantize] cache folder ",
             opt.cache_dir, " does not exist or is not writable (cache_dir)");
  if (opt.progress)
    std::fprintf(stderr, "calibration: %lld samples x %lld tokens (%s); activation caches %s%s, %s%s\n", (long long)N,
                 (long long)T, data.mode.c_str(), format_bytes(double(need)).c_str(), opt.cache_bf16 ? " (bf16)" : "",
                 spill ? ("on disk in " + dir + " (over the memory budget of " + format_bytes(double(budget)) + ")").c_str()
                       : "in memory",
                 opt.tune.method != Method::SignRound ? "" : opt.tune.amp ? "; tuning in bf16 (amp)" : "; tuning in fp32");
  at::NoGradGuard ng;
  Caches caches;
  caches.shard_rows = N / S;
  caches.local = local;
  caches.samples = N;
  const int64_t from = opt.comm ? opt.comm->rank() * (N / S) : 0;
  const at::Tensor tokens = data.tokens.narrow(0, from, rows);
  const at::ScalarType dtype = opt.cache_bf16 ? at::kBFloat16 : at::kFloat;
  if (!spill) {
    caches.x_fp = model.embed(tokens).to(dtype);
    caches.x_q = caches.x_fp.all().clone();
  } else {
    caches.x_fp = ActivationCache::on_disk(dir, {rows, T, D}, dtype);
    caches.x_q = ActivationCache::on_disk(dir, {rows, T, D}, dtype);
    const int64_t step = std::max<int64_t>(1, (64LL << 20) / (T * D * 4));
    for (int64_t r = 0; r < rows; r += step) {
      const at::Tensor x = model.embed(tokens.narrow(0, r, std::min(step, rows - r)));
      caches.x_fp.write(r, x);
      caches.x_q.write(r, x);
    }
  }
  caches.mask = data.mask.narrow(0, from, rows);
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

// A replayed unit's quantized weights and calibrated act_max, from rank 0 (whose state_dir
// holds them) to the others, which fill res with them.
void share_replayed_unit(const LayerPlan& plan, const UnitInput& in, UnitResult& res, const Comm& comm) {
  const bool root = comm.rank() == 0;
  std::map<std::string, const QuantizedLayer*> saved;
  for (const QuantizedLayer& l : res.layers) saved[l.name] = &l;
  if (!root) res = UnitResult{{}, in.fp, {{"blocks", in.blocks}, {"resumed", true}}};
  for (size_t j = 0; j < in.blocks.size(); ++j)
    for (int i = 0; i < int(plan.blocks[in.blocks[j]].linears.size()); ++i) {
      const LayerChoice* c = plan.find(in.blocks[j], i);
      if (!c || !c->quantized()) continue;
      at::Tensor w = root ? res.quantized[j].weight(i).to(at::kFloat).contiguous() : at::empty({c->out, c->in}, at::kFloat);
      comm.broadcast(w);
      at::Tensor act = at::full({1}, -1.0f);
      if (root && saved.count(c->name) && saved[c->name]->act.act_max.defined())
        act.fill_(saved[c->name]->act.act_max.item<float>());
      comm.broadcast(act);
      if (root) continue;
      res.quantized[j].weight(i) = w;
      QuantizedLayer l;
      l.name = c->name;
      l.scheme = c->scheme;
      if (act.item<float>() >= 0) l.act.act_max = act.reshape({});
      res.layers.push_back(std::move(l));
    }
}

// The unit's FP pass: caches.x_fp becomes its reference output Y_ref; unless the unit is
// replayed (and no imatrix is being collected), its linears' imatrix and act_max are observed
// on the way. Hands the unit its inputs.
void reference_pass(const ModelConfig& c, const LayerPlan& plan, const QuantizeOptions& opt, Caches& caches,
                    UnitInput& in, bool saved, const RopeTables& rope) {
  if (!opt.enable_quanted_input) caches.x_q.copy_from(caches.x_fp);
  std::vector<Observer> parts(size_t(caches.local));
  const bool observing = !saved || opt.collected_imatrix;
  const RowsDone done = pass_lines(opt.progress && writes_state(opt), unit_label(in, c.n_layers) + "  FP pass",
                                   caches.local * caches.shard_rows);
  for (int64_t k = 0; k < caches.local; ++k) {
    std::vector<InputHook> observe;
    for (int64_t b : in.blocks) observe.push_back(observing ? parts[size_t(k)].hook_for(b, plan) : InputHook());
    forward_in_place(c, caches.shard(caches.x_fp, k), in.fp, observe, rope, done);
  }
  Observer obs = combine(parts, plan, in.blocks, opt.comm);
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
                             const QuantizeOptions& opt, const TuneOptions& tune, const std::string& state_dir) {
  UnitResult res = quantize_unit(c, plan, in, rope, tune);
  std::map<int64_t, std::vector<QuantizedLayer>> per_block;
  for (const QuantizedLayer& l : res.layers) per_block[plan.find(l.name)->block].push_back(l);
  if (writes_state(opt))
    for (int64_t b : in.blocks) save_block_state(block_file(state_dir, b), per_block[b], res.stats);
  return res;
}

// X_q for the next unit: the quantized unit, with its activation quantization, on X_q.
void advance_quantized_input(const ModelConfig& c, const LayerPlan& plan, const UnitInput& in, const UnitResult& res,
                             Caches& caches, const RopeTables& rope, bool progress) {
  std::map<std::string, ActQuantState> act;
  for (const QuantizedLayer& l : res.layers) act[l.name] = l.act;
  std::vector<InputHook> hooks;
  for (int64_t b : in.blocks) hooks.push_back(activation_hook(plan, b, act));
  const RowsDone done = pass_lines(progress, unit_label(in, c.n_layers) + "  quantized pass",
                                   caches.local * caches.shard_rows);
  for (int64_t k = 0; k < caches.local; ++k)
    forward_in_place(c, caches.shard(caches.x_q, k), res.quantized, hooks, rope, done);
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

// The progress lines' ETA, from what the run has measured: the units left times the mean time of
// the units quantized so far (replayed ones excluded: they cost a fraction), and inside a unit's
// sign-SGD loop, its iterations left at their mean time (the first one left out once there are
// others: alone it is noisy, warm-up and load, 0.4 to 3.8 s against ~1 s on the 4m model), plus the unit's work after the loop
// (encoding and the quantized pass, taken as long as its FP pass), plus the units after it at
// the mean of those measured or, before any, at this unit's projected time. Calibration is over
// when these lines print; lm_head and the export after the blocks are not included (the lines
// say "for the blocks").
class Eta {
 public:
  explicit Eta(int64_t units) : units_(units) {}
  void unit_done(double seconds, bool measured) {
    if (measured) sum_ += seconds, ++measured_;
    ++done_;
  }
  // After a unit; negative when nothing was measured yet.
  double blocks_left() const { return measured_ ? sum_ / double(measured_) * double(units_ - done_) : -1; }
  // Inside the loop of unit done_ (0-based), `in_unit` seconds after the unit began, at `it` of
  // `iters` iterations taking `per_iter` seconds each.
  std::pair<double, double> unit_and_blocks_left(double in_unit, double per_iter, int64_t it, int64_t iters,
                                                 double after_loop) const {
    double unit_left = per_iter * double(iters - it) + after_loop;
    // After one iteration (its time inflated by warm-up), a unit already finished says more.
    if (it == 1 && measured_) unit_left = std::max(0.0, sum_ / double(measured_) - in_unit);
    const double per_unit = measured_ ? sum_ / double(measured_) : in_unit + unit_left;
    return {unit_left, unit_left + per_unit * double(units_ - done_ - 1)};
  }

 private:
  int64_t units_, done_ = 0, measured_ = 0;
  double sum_ = 0;
};

// "block 3/16  iter 20/200  4.2 s/iter  ETA 13m20s for this block, 3h05m for the blocks": the
// first iteration's line, then at most one every 30 s.
std::function<void(int64_t, int64_t, double)> iteration_lines(const Eta& eta, const UnitInput& in, int64_t n_layers,
                                                              double t_unit, double after_loop) {
  auto last = std::make_shared<double>(-1e30), first = std::make_shared<double>(0);
  return [&eta, label = unit_label(in, n_layers), t_unit, after_loop, last,
          first](int64_t it, int64_t iters, double loop_seconds) {
    const double now = now_seconds();
    if (it == 1) *first = loop_seconds;
    if (it == iters || (it > 1 && now - *last < 30)) return;
    *last = now;
    const double per_iter = it > 1 ? (loop_seconds - *first) / double(it - 1) : loop_seconds;
    const auto [unit, blocks] = eta.unit_and_blocks_left(now - t_unit, per_iter, it, iters, after_loop);
    std::fprintf(stderr, "%s  iter %lld/%lld  %.2f s/iter  ETA %s for this block, %s for the blocks\n",
                 label.c_str(), (long long)it, (long long)iters, per_iter, format_duration(unit).c_str(),
                 format_duration(blocks).c_str());
    std::fflush(stderr);
  };
}

// The unit's line: "block 3/16  loss ... 41.2s  ETA 9m36s for the blocks".
void unit_line(const UnitInput& in, int64_t n_layers, const std::string& summary, const Eta& eta) {
  const double left = eta.blocks_left();
  std::fprintf(stderr, "%s  %s%s\n", unit_label(in, n_layers).c_str(), summary.c_str(),
               left >= 0 && in.blocks.back() + 1 < n_layers ? ("  ETA " + format_duration(left) + " for the blocks").c_str() : "");
  std::fflush(stderr);
}

// Resolves TuneOptions::checkpoint Auto's budget and says what tuning will hold per step.
void plan_checkpointing(const ModelConfig& c, QuantizeOptions& opt, int64_t T) {
  TuneOptions& t = opt.tune;
  if (t.checkpoint == Checkpoint::Auto && t.graph_budget <= 0) t.graph_budget = cache_memory_budget(0);
  if (!opt.progress || t.method != Method::SignRound || t.iters <= 0) return;
  const bool on = use_checkpointing(c, t, T, opt.nblocks);
  std::fprintf(stderr, "tuning graph: about %s per step (%lld x %lld tokens per forward, %lld block%s)%s\n",
               format_bytes(double(tuning_graph_bytes(c, t.batch_size, T, opt.nblocks, on))).c_str(), (long long)t.batch_size,
               (long long)T, (long long)opt.nblocks, opt.nblocks > 1 ? "s" : "",
               !on ? "" : t.checkpoint == Checkpoint::On ? "; recomputed in the backward (checkpoint)"
                   : ("; recomputed in the backward: " +
                      format_bytes(double(tuning_graph_bytes(c, t.batch_size, T, opt.nblocks, false))) +
                      " without, over the budget of " + format_bytes(double(t.graph_budget))).c_str());
}

}  // namespace

nlohmann::json run_quantization(const Model& model, const LayerPlan& plan, const QuantizeOptions& options,
                                const std::string& state_dir, const nlohmann::json& fingerprint) {
  const ModelConfig& c = model.config();
  const double t_start = now_seconds();
  QuantizeOptions opt = options;
  opt.tune.shards = {opt.data_shards, opt.comm ? 1 : opt.data_shards, opt.comm ? opt.comm->rank() : 0, opt.comm};
  const bool writer = writes_state(opt);
  const bool resuming = writer && check_fingerprint(state_dir, fingerprint, opt.resume);
  SR_CHECK(opt.nblocks >= 1 && opt.nblocks <= c.n_layers, "[quantize] nblocks must be in [1, ", c.n_layers, "], got ", opt.nblocks);
  SR_CHECK(opt.tune.batch_size >= 1 && opt.tune.gradient_accumulate_steps >= 1,
           "[quantize] batch_size and gradient_accumulate_steps must be positive, got ", opt.tune.batch_size, " and ",
           opt.tune.gradient_accumulate_steps);
  nlohmann::json record = {{"units", nlohmann::json::array()}};
  Caches caches;
  if (needs_calibration(opt)) caches = make_caches(model, calibration_data(model, opt), opt, state_dir, record);
  if (!resuming && writer) write_fingerprint(state_dir, fingerprint);  // every input checked: the first byte written
  const RopeTables& rope = model.rope(caches.active() ? caches.x_fp.size(1) : 1);
  const int64_t n_units = (c.n_layers + opt.nblocks - 1) / opt.nblocks;
  if (caches.active()) plan_checkpointing(c, opt, caches.x_fp.size(1));
  Eta eta(n_units);
  for (int64_t u = 0; u < n_units; ++u) {
    const double t0 = now_seconds();
    UnitInput in = load_unit(model, u, opt.nblocks);
    const bool saved = rank0_says(opt.comm, writer && unit_saved(in, state_dir, opt.resume));
    UnitResult res;
    if (saved && writer) res = replay_saved_unit(plan, in, state_dir);
    if (saved && opt.comm) share_replayed_unit(plan, in, res, *opt.comm);
    const double t_pass = now_seconds();
    if (caches.active()) reference_pass(c, plan, opt, caches, in, saved, rope);
    if (opt.imatrix) use_given_imatrix(plan, *opt.imatrix, in);
    TuneOptions tune = opt.tune;
    if (opt.progress && writer) tune.on_iteration = iteration_lines(eta, in, c.n_layers, t0, now_seconds() - t_pass);
    if (!saved) res = quantize_and_save(c, plan, in, rope, opt, tune, state_dir);
    if (caches.active()) advance_quantized_input(c, plan, in, res, caches, rope, opt.progress && writer);
    res.stats["seconds_total"] = now_seconds() - t0;
    record["units"].push_back(res.stats);
    eta.unit_done(now_seconds() - t0, !saved);
    if (opt.progress) unit_line(in, c.n_layers, unit_summary(res.stats, saved, now_seconds() - t0), eta);
    SR_CHECK(opt.stop_after_units < 0 || u + 1 < opt.stop_after_units, "[quantize] stopped after ", u + 1,
             " units as asked (stop_after_units); continue with resume");
  }
  save_head_imatrix(model, opt, caches, state_dir);
  if (const LayerChoice* head = plan.find("lm_head"); head && head->quantized())
    record["lm_head"] = quantize_lm_head(model, plan, opt, caches, state_dir);
  record["compute_dtype"] = compute_dtype_name(opt.tune.amp && opt.tune.method == Method::SignRound);
  if (caches.active() && opt.tune.method == Method::SignRound && opt.tune.iters > 0)
    record["checkpoint"] = use_checkpointing(c, opt.tune, caches.x_fp.size(1), opt.nblocks);
  record["seconds"] = now_seconds() - t_start;
  record["peak_rss_bytes"] = peak_rss_bytes();
  if (opt.comm)  // what rank 0 handed to the collectives (the others send as much)
    record["data_parallel"] = {{"world", opt.comm->world()}, {"payload_bytes", opt.comm->payload_bytes()}};
  return record;
}

}  // namespace sr
