#include "tune/unit_quantizer.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <numeric>
#include <random>

#include "common/dist.h"
#include "common/amp.h"
#include "common/error.h"
#include "common/sysinfo.h"
#include "model/block_checkpoint.h"
#include "quant/block_quant.h"

namespace sr {
namespace {

// One quantized linear of the unit while it is being quantized.
struct LayerJob {
  const LayerChoice* choice;
  size_t pos;            // index of its block in the unit
  at::Tensor w;          // FP weight [O, I] fp32
  WeightQuantParams p;   // tunables (v, alpha, beta) + init scale / global scale
  double lr = 0, minmax_lr = 0;
  ActQuantState act;
};

// Snapshot of every job's tunables (v, alpha, beta), for best-iteration selection.
using Snapshot = std::vector<Tunables>;

std::vector<LayerJob> make_jobs(const LayerPlan& plan, const UnitInput& in) {
  std::vector<LayerJob> jobs;
  for (size_t j = 0; j < in.blocks.size(); ++j) {
    for (int i = 0; i < int(plan.blocks[in.blocks[j]].linears.size()); ++i) {
      const LayerChoice* c = plan.find(in.blocks[j], i);
      if (!c || !c->quantized()) continue;
      LayerJob job{c, j, in.fp[j].weight(i).detach().to(at::kFloat), {}, 0, 0, {}};
      if (auto it = in.act_max.find(c->name); it != in.act_max.end()) job.act.act_max = it->second;
      jobs.push_back(std::move(job));
    }
  }
  return jobs;
}

// The layer's importance in its scheme's units (quant/block_quant.h: Σx², or llama.cpp's mean of
// x² for GGUF types, so that opt-RTN reproduces llama-quantize --imatrix exactly).
// `tokens`: how many calibration tokens the Σx² summed (0: unknown, no rescaling).
at::Tensor imatrix_of(const std::map<std::string, at::Tensor>& imatrix, const LayerChoice& c, int64_t tokens) {
  auto it = imatrix.find(c.name);
  return it == imatrix.end() ? at::Tensor() : scheme_importance(it->second, c.scheme, tokens);
}

int64_t token_count(const ActivationCache& x) { return x.defined() ? x.size(0) * x.size(1) : 0; }

// NVFP4 global scales as every stage fuses them (quant/block_quant.h), block by block. A job
// outside the blocks (lm_head) is a block of its own: one linear, its own scale.
void fuse_nv_global_scales(const BlockDescs& descs, std::vector<LayerJob>& jobs) {
  static const BlockDesc kAlone{{LinearDesc{}}, {}};
  std::map<size_t, std::pair<BlockSchemes, BlockWeights>> blocks;
  std::map<size_t, const BlockDesc*> desc_of;
  for (const LayerJob& j : jobs) {
    if (j.choice->linear < 0) continue;
    auto it = blocks.find(j.pos);
    if (it == blocks.end()) {
      const BlockDesc& d = descs[j.choice->block];
      desc_of[j.pos] = &d;
      BlockWeights w;
      w.w.resize(d.linears.size());
      it = blocks.emplace(j.pos, std::make_pair(unquantized_block(d), std::move(w))).first;
    }
    auto& [s, w] = it->second;
    s[size_t(j.choice->linear)] = j.choice->scheme;
    w.weight(j.choice->linear) = j.w;
  }
  std::map<size_t, BlockTensors> scales;
  for (auto& [pos, sw] : blocks) scales[pos] = fused_global_scales(*desc_of.at(pos), sw.second, sw.first);
  for (LayerJob& j : jobs) {
    at::Tensor gs;
    if (j.choice->linear < 0) {
      BlockWeights w;
      w.w = {j.w};
      gs = fused_global_scales(kAlone, w, {j.choice->scheme})[0];
    } else {
      gs = scales.at(j.pos)[size_t(j.choice->linear)];
    }
    if (gs.defined()) j.p.global_scale = gs;
  }
}

// Random permutation of sample indices served in consecutive slices of `size`; when
// fewer than `size` remain it reshuffles and restarts (auto-round's IndexSampler).
class IndexSampler {
 public:
  IndexSampler(int64_t n, int64_t size, uint64_t seed) : order_(size_t(n)), size_(size), rng_(seed) {
    std::iota(order_.begin(), order_.end(), 0);
    std::shuffle(order_.begin(), order_.end(), rng_);
  }
  std::vector<int64_t> next() {
    if (at_ + size_ > int64_t(order_.size())) {
      std::shuffle(order_.begin(), order_.end(), rng_);
      at_ = 0;
    }
    std::vector<int64_t> out(order_.begin() + at_, order_.begin() + at_ + size_);
    at_ += size_;
    return out;
  }

 private:
  std::vector<int64_t> order_;
  int64_t size_, at_ = 0;
  std::mt19937_64 rng_;
};

enum class LossKind { MaskedMse, PlainMse, OutlierFilteredMse };

// §2.4 / §3.5. P, R: [b, T, D]; M: [b, T] bool. Means run over ALL elements (masked ones too).
at::Tensor unit_loss(const at::Tensor& P, const at::Tensor& R, const at::Tensor& M, LossKind kind, bool sum) {
  at::Tensor d = P.to(at::kFloat) - R;  // fp32 loss whatever the prediction's dtype (amp)
  if (kind == LossKind::OutlierFilteredMse) {
    at::Tensor keep = at::ones_like(d);
    {
      at::NoGradGuard ng;
      const int64_t k = std::max<int64_t>(1, d.numel() / 1000);
      auto idx = std::get<1>(d.detach().abs().reshape(-1).topk(k));
      keep.view(-1).index_fill_(0, idx, 0.0);
    }
    d = d * keep;
  }
  if (kind != LossKind::PlainMse) d = d * M.unsqueeze(-1).to(d.scalar_type());
  return sum ? d.pow(2).sum() : d.pow(2).mean();
}

LossKind loss_kind(const std::vector<LayerJob>& jobs, const TuneOptions& opt) {
  bool v2 = false, filter = false;
  for (const LayerJob& j : jobs) {
    const QuantScheme& s = j.choice->scheme;
    if (opt.alg_ext && uses_v2_wrapper(s)) {
      v2 = true;
      // §3.1: only the init-scale wrapper's schemes decide on the filter; GGUF types (the
      // frozen-parameter wrapper) leave it off.
      if (!s.is_gguf()) filter |= s.bits < 4 || (s.act_quantized() && s.act_bits <= 4);
    }
  }
  if (!v2) return LossKind::MaskedMse;
  // ⚠ spec §3.5: without the filter, v2 falls back to the unmasked MSE.
  return filter ? LossKind::OutlierFilteredMse : LossKind::PlainMse;
}

double layer_lr(const QuantScheme& s, const TuneOptions& opt) {
  if (opt.lr > 0) return opt.lr;
  const double iters = double(std::max<int64_t>(opt.iters, 1));
  return (opt.iters >= 1000 && s.bits <= 3) ? 2.0 / iters : 1.0 / iters;
}

Snapshot snapshot(const std::vector<LayerJob>& jobs) {
  Snapshot s;
  for (const LayerJob& j : jobs) {
    Tunables t = j.p.t;
    for (at::Tensor* x : {&t.v, &t.alpha, &t.beta})
      if (x->defined()) *x = x->detach().clone();
    s.push_back(t);
  }
  return s;
}

// Weights of the unit's blocks with every job's qdq'd weight substituted. MoE experts are qdq'd
// lazily, when the forward routes tokens to them: the cost and the graph of an iteration grow
// with the experts in use, not with all of them. REQUIRES: jobs outlive the weights.
std::vector<BlockWeights> quantized_weights(const BlockDescs& d, const UnitInput& in, const std::vector<LayerJob>& jobs) {
  std::vector<BlockWeights> w = in.fp;
  std::vector<std::map<int, const LayerJob*>> lazy(w.size());
  for (const LayerJob& j : jobs) {
    const int i = j.choice->linear;
    if (i >= 0 && d[j.choice->block].linears[size_t(i)].expert >= 0) {
      w[j.pos].weight(i) = at::Tensor();
      lazy[j.pos][i] = &j;
    } else {
      w[j.pos].weight(i) = qdq_weight(j.w, j.choice->scheme, j.p).w_hat;
    }
  }
  for (size_t p = 0; p < w.size(); ++p)
    if (!lazy[p].empty())
      w[p].lazy = [jobs = std::move(lazy[p])](int i) {
        const LayerJob& j = *jobs.at(i);
        return qdq_weight(j.w, j.choice->scheme, j.p).w_hat;
      };
  return w;
}

std::vector<InputHook> unit_hooks(const LayerPlan& plan, const UnitInput& in, const std::vector<LayerJob>& jobs) {
  std::map<std::string, ActQuantState> act;
  for (const LayerJob& j : jobs) act[j.choice->name] = j.act;
  std::vector<InputHook> hooks;
  for (int64_t b : in.blocks) hooks.push_back(activation_hook(plan, b, act));
  return hooks;
}

void sign_sgd_step(std::vector<LayerJob>& jobs, int64_t i, int64_t iters) {
  at::NoGradGuard ng;
  const double decay = 1.0 - double(i) / double(iters);  // LinearLR(1 -> 0)
  for (LayerJob& j : jobs) {
    auto step = [&](at::Tensor& p, double lr) {
      if (!p.defined() || !p.grad().defined()) return;
      p.sub_(p.grad().sign() * (lr * decay));
      p.mutable_grad().zero_();
    };
    step(j.p.t.v, j.lr);
    step(j.p.t.alpha, j.minmax_lr);
    step(j.p.t.beta, j.minmax_lr);
  }
}

void restore(std::vector<LayerJob>& jobs, const Snapshot& s) {
  for (size_t k = 0; k < jobs.size(); ++k) {
    jobs[k].p.t.v = s[k].v;
    jobs[k].p.t.alpha = s[k].alpha;
    jobs[k].p.t.beta = s[k].beta;
  }
}

// One tuning problem for the sign-SGD loop: how to predict the target from the
// jobs' current parameters for a set of calibration rows.
struct TuneProblem {
  int64_t samples = 0;
  uint64_t seed = 0;
  int64_t batch_size = 8;   // rows per forward
  int64_t accumulate = 1;   // forwards per step (gradient accumulation)
  bool sum_reduction = false;
  LossKind kind = LossKind::MaskedMse;
  std::string what;         // "block 3", "lm_head": for messages
  std::function<at::Tensor(const at::Tensor& rows)> predict;  // uses the jobs' current qdq weights
  std::function<at::Tensor(const at::Tensor& rows)> target;   // no gradient
  std::function<at::Tensor(const at::Tensor& rows)> mask;     // [b, T] bool
};

// Every job's trainable tensors (v, alpha, beta where defined), in job order.
std::vector<at::Tensor*> trainables(std::vector<LayerJob>& jobs) {
  std::vector<at::Tensor*> out;
  for (LayerJob& j : jobs)
    for (at::Tensor* p : {&j.p.t.v, &j.p.t.alpha, &j.p.t.beta})
      if (p->defined()) out.push_back(p);
  return out;
}

// A parameter's gradient, zeros where it has none (a MoE expert without tokens on this shard).
at::Tensor grad_or_zeros(const at::Tensor& p) { return p.grad().defined() ? p.grad() : at::zeros_like(p); }

// Gradients of the shards this process held so far this step (`acc`, in shard order) plus the
// current shard's, which are taken out of the parameters (left zero for the next shard).
void add_shard_grads(std::vector<LayerJob>& jobs, std::vector<at::Tensor>& acc) {
  std::vector<at::Tensor*> ps = trainables(jobs);
  const bool first = acc.empty();
  for (size_t k = 0; k < ps.size(); ++k) {
    at::Tensor g = grad_or_zeros(*ps[k]).clone();
    if (first) acc.push_back(g);
    else acc[k] = acc[k] + g;
    if (ps[k]->grad().defined()) ps[k]->mutable_grad().zero_();
  }
}

// The step's gradients and loss summed over every rank (what one process holding every shard
// gets, DataShards), exchanged while the step's last backward runs, as DDP overlaps them: a
// tensor hook on each trainable sees its gradient when autograd reaches it; each job's v, α, β
// are one bucket, and a bucket's sum starts once it and every bucket before it in a fixed order
// are complete (the jobs reversed: the backward reaches the last linears first), so every rank
// starts the same exchanges in the same order whatever order its hooks fire in. The loss is
// exchanged during the backward too. Buckets with a tensor that got no gradient on this rank (a
// MoE expert without tokens) start after the backward, that tensor as zeros. The values are
// those of one exchange after the backward: each element is the same a + b.
class OverlappedReduce {
 public:
  OverlappedReduce(const Comm& comm, std::vector<LayerJob>& jobs) : comm_(comm) {
    for (size_t j = jobs.size(); j-- > 0;) {
      Bucket b;
      for (at::Tensor* p : {&jobs[j].p.t.v, &jobs[j].p.t.alpha, &jobs[j].p.t.beta})
        if (p->defined()) b.params.push_back(p);
      if (!b.params.empty()) buckets_.push_back(std::move(b));
    }
    for (size_t b = 0; b < buckets_.size(); ++b) {
      buckets_[b].grads.resize(buckets_[b].params.size());
      for (size_t k = 0; k < buckets_[b].params.size(); ++k)
        buckets_[b].hooks.push_back(
            buckets_[b].params[k]->register_hook([this, b, k](const at::Tensor& g) { ready(b, k, g); }));
    }
  }
  ~OverlappedReduce() {
    for (Bucket& b : buckets_)
      for (size_t k = 0; k < b.params.size(); ++k) b.params[k]->remove_hook(b.hooks[k]);
  }
  OverlappedReduce(const OverlappedReduce&) = delete;
  OverlappedReduce& operator=(const OverlappedReduce&) = delete;

  // The next backward is the step's last; `loss`: this rank's loss of the step.
  void arm(double loss) {
    armed_ = true;
    loss_ = at::full({1}, loss, at::kDouble);
    loss_wait_ = comm_.start_sum(loss_);
  }
  // After the last backward: starts what did not start, waits, and leaves the summed gradients in
  // the trainables. Returns the summed loss.
  double finish() {
    for (Bucket& b : buckets_)
      for (size_t k = 0; k < b.params.size(); ++k)
        if (!b.grads[k].defined()) b.grads[k] = grad_or_zeros(*b.params[k]);
    while (next_ < buckets_.size()) start(next_++);
    loss_wait_();
    for (Bucket& b : buckets_) {
      b.wait();
      int64_t at = 0;
      for (size_t k = 0; k < b.params.size(); ++k) {
        at::Tensor* p = b.params[k];
        p->mutable_grad() = b.flat.narrow(0, at, p->numel()).view(p->sizes());
        at += p->numel();
        b.grads[k] = at::Tensor();
      }
      b.flat = at::Tensor();
      b.ready = 0;
    }
    next_ = 0;
    armed_ = false;
    return loss_.item<double>();
  }

 private:
  struct Bucket {
    std::vector<at::Tensor*> params;
    std::vector<unsigned> hooks;
    std::vector<at::Tensor> grads;  // this rank's, as autograd will accumulate them
    size_t ready = 0;
    at::Tensor flat;                // their sum over the ranks, once waited for
    std::function<void()> wait;
  };

  void ready(size_t b, size_t k, const at::Tensor& g) {
    if (!armed_) return;
    const at::Tensor& acc = buckets_[b].params[k]->grad();  // earlier backwards of the step
    buckets_[b].grads[k] = acc.defined() ? acc + g : g;
    if (++buckets_[b].ready < buckets_[b].params.size()) return;
    while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params.size()) start(next_++);
  }
  void start(size_t b) {
    std::vector<at::Tensor> flat;
    for (const at::Tensor& g : buckets_[b].grads) flat.push_back(g.reshape(-1));
    buckets_[b].flat = at::cat(flat);
    buckets_[b].wait = comm_.start_sum(buckets_[b].flat);
  }

  const Comm& comm_;
  std::vector<Bucket> buckets_;
  size_t next_ = 0;
  bool armed_ = false;
  at::Tensor loss_;
  std::function<void()> loss_wait_;
};

uint64_t shard_seed(uint64_t seed, int64_t shard) { return seed + uint64_t(shard) * 0x9E3779B97F4A7C15ULL; }

// The sign-SGD loop of §2.6; leaves the selected parameters in the jobs. Each step's batch is
// an equal share from every shard (opt.shards; one shard: the batch drawn from all samples).
nlohmann::json tune(const TuneProblem& pb, std::vector<LayerJob>& jobs, const TuneOptions& opt) {
  const DataShards& sh = opt.shards;
  SR_CHECK(sh.local >= 1 && pb.samples % sh.local == 0, "[signround] ", pb.what, ": ", pb.samples,
           " cached samples do not split into ", sh.local, " equal shards");
  const int64_t shard_rows = pb.samples / sh.local;
  const int64_t global_bs = std::min(shard_rows * sh.count, pb.batch_size * pb.accumulate);
  SR_CHECK(global_bs % sh.count == 0, "[signround] ", pb.what, ": the batch of ", global_bs,
           " samples (batch_size x gradient_accumulate_steps) does not split into equal shares of the ", sh.count,
           " data shards (ranks); choose a multiple of ", sh.count);
  const int64_t share = global_bs / sh.count;
  std::vector<IndexSampler> samplers;
  for (int64_t k = 0; k < sh.local; ++k) samplers.emplace_back(shard_rows, share, shard_seed(pb.seed, sh.first + k));
  double best = std::numeric_limits<double>::infinity(), first = 0;
  int64_t best_iter = -1;
  Snapshot chosen;
  const at::Device device = jobs.front().w.device();
  AmpScope amp(device, opt.amp);
  auto target = [&](const at::Tensor& rows) {
    AmpScope fp32(device, false);  // the reference is not the thing tuned: full precision
    return pb.target(rows).to(at::kFloat);
  };
  // Data-parallel: gradients exchanged during the backward (the 1-process loop has none).
  std::unique_ptr<OverlappedReduce> overlap;
  if (sh.comm) overlap = std::make_unique<OverlappedReduce>(*sh.comm, jobs);
  const double t_loop = now_seconds();
  for (int64_t i = 0; i < opt.iters; ++i) {
    double total = 0;
    std::vector<at::Tensor> shard_grads;  // only when this process holds several shards
    for (int64_t k = 0; k < sh.local; ++k) {
      std::vector<int64_t> idx = samplers[size_t(k)].next();
      for (int64_t& r : idx) r += k * shard_rows;
      double part = 0;
      for (int64_t c = 0; c < share; c += pb.batch_size) {
        auto rows = at::tensor(std::vector<int64_t>(idx.begin() + c, idx.begin() + std::min(share, c + pb.batch_size)));
        for (LayerJob& j : jobs) clamp_params_(j.p);
        auto L = unit_loss(pb.predict(rows), target(rows), pb.mask(rows), pb.kind, pb.sum_reduction);
        part += L.item<double>();
        if (overlap && c + pb.batch_size >= share) overlap->arm(part);
        (L * 1000.0).backward();
      }
      total += part;
      if (sh.local > 1) add_shard_grads(jobs, shard_grads);
    }
    if (sh.local > 1) {
      std::vector<at::Tensor*> ps = trainables(jobs);
      for (size_t k = 0; k < ps.size(); ++k) ps[k]->mutable_grad() = shard_grads[k];
    }
    if (overlap) total = overlap->finish();
    SR_CHECK(std::isfinite(total), "[signround] ", pb.what, ": loss became ", total, " at iteration ", i);
    if (i == 0) first = total;
    if (total < best) {
      best = total;
      best_iter = i;
      if (!opt.not_use_best_mse) chosen = snapshot(jobs);
    }
    if (opt.not_use_best_mse && i == opt.iters - 1) chosen = snapshot(jobs);
    sign_sgd_step(jobs, i, opt.iters);
    if (opt.on_iteration) opt.on_iteration(i + 1, opt.iters, now_seconds() - t_loop);
  }
  overlap.reset();  // its hooks, before the jobs' tensors are replaced
  const double loop_seconds = now_seconds() - t_loop;  // the sign-SGD steps alone (bench/ddp_speed.sh)
  restore(jobs, chosen);
  double max_v = 0;
  for (const LayerJob& j : jobs)
    if (j.p.t.v.defined()) max_v = std::max(max_v, j.p.t.v.abs().max().item<double>());
  return {{"max_abs_v", max_v}, {"compute_dtype", compute_dtype_name(opt.amp)}, {"loop_seconds", loop_seconds}, {"loss_first", first}, {"loss_best", best}, {"best_iter", best_iter},
          {"loss", pb.kind == LossKind::MaskedMse ? "masked_mse" : pb.kind == LossKind::PlainMse ? "mse" : "outlier_filtered_mse"}};
}

// SignRound parameters of every job (§1.7, §3.1, §3.4), or its RTN / opt-RTN params.
// `tokens`: what each layer's Σx² summed over (layer_tokens, else all of them).
void init_params(const BlockDescs& d, std::vector<LayerJob>& jobs, const std::map<std::string, at::Tensor>& imatrix,
                 const std::map<std::string, int64_t>& layer_tokens, int64_t tokens, const TuneOptions& opt, bool tuning) {
  auto im = [&](const LayerChoice& c) {
    auto it = layer_tokens.find(c.name);
    return imatrix_of(imatrix, c, it == layer_tokens.end() ? tokens : it->second);
  };
  if (!tuning) {
    fuse_nv_global_scales(d, jobs);
    for (LayerJob& j : jobs) {
      const at::Tensor gs = j.p.global_scale;
      j.p = opt.method == Method::Rtn ? rtn(j.w, j.choice->scheme, gs).params
                                      : opt_rtn(j.w, j.choice->scheme, im(*j.choice), gs).params;
    }
    return;
  }
  for (LayerJob& j : jobs) {
    const QuantScheme& s = j.choice->scheme;
    const TuneMode mode = opt.alg_ext && uses_v2_wrapper(s) ? TuneMode::V2 : TuneMode::V1;
    const bool weighted = mode == TuneMode::V2 || (s.is_gguf() && ggml_type_traits(s.ggml_type).requires_importance);
    j.p = make_weight_params(j.w, s, mode, weighted ? im(*j.choice) : at::Tensor());
    if (!opt.enable_minmax_tuning) j.p.t.alpha = j.p.t.beta = at::Tensor();
    j.lr = layer_lr(s, opt);
    j.minmax_lr = opt.minmax_lr > 0 ? opt.minmax_lr : j.lr;
  }
  fuse_nv_global_scales(d, jobs);
}

const char* method_name(const TuneOptions& opt, bool tuning) {
  if (tuning) return opt.alg_ext ? "signround_v2" : "signround_v1";
  return opt.method == Method::Rtn ? "rtn" : "opt_rtn";
}

// Final parameters -> encoded layers (what the state and export store).
std::vector<QuantizedLayer> encode_jobs(std::vector<LayerJob>& jobs) {
  at::NoGradGuard ng;
  std::vector<QuantizedLayer> out;
  for (LayerJob& j : jobs) {
    clamp_params_(j.p);
    out.push_back({j.choice->name, j.choice->scheme, encode_weight(j.w, j.choice->scheme, j.p), j.act});
  }
  return out;
}

// The tokens each expert of the unit's blocks received in the FP pass (the rows its gate
// projection saw), per block, for the run record; experts that received none keep their
// initial quantization (no gradient reaches them) and are named on stderr.
nlohmann::json expert_tokens(const ModelConfig& c, const LayerPlan& plan, const UnitInput& in) {
  nlohmann::json out = nlohmann::json::object();
  for (int64_t b : in.blocks) {
    if (!c.sparse_block(b)) continue;  // a dense MLP block of a MoE model: no experts
    std::vector<int64_t> n;
    std::string idle;
    for (int64_t e = 0; e < c.moe.n_experts; ++e) {
      const LayerChoice* gate = plan.find(b, moe::expert_linear(e, moe::Gate));
      auto it = gate ? in.tokens.find(gate->name) : in.tokens.end();
      n.push_back(it == in.tokens.end() ? 0 : it->second);
      if (n.back() == 0) idle += (idle.empty() ? "" : ", ") + std::to_string(e);
    }
    if (!idle.empty())
      std::fprintf(stderr, "note: block %lld: experts %s received no calibration token; they keep their initial "
                   "quantization\n", (long long)b, idle.c_str());
    out[std::to_string(b)] = n;
  }
  return out;
}

}  // namespace

InputHook activation_hook(const LayerPlan& plan, int64_t block, const std::map<std::string, ActQuantState>& act) {
  BlockSchemes schemes = unquantized_block(plan.blocks[block]);
  std::vector<ActQuantState> states(schemes.size());
  for (size_t i = 0; i < schemes.size(); ++i) {
    const LayerChoice* c = plan.find(block, int(i));
    if (!c || !c->quantized()) continue;
    schemes[i] = c->scheme;
    if (auto it = act.find(c->name); it != act.end()) states[i] = it->second;
  }
  return block_activation_hook(schemes, states, StaticRange::Calibrated);
}

at::Tensor unit_forward(const ModelConfig& config, const std::vector<BlockWeights>& weights,
                        const std::vector<InputHook>& hooks, const at::Tensor& x, const RopeTables& rope,
                        bool checkpointed) {
  auto positions = at::arange(x.size(1), at::kLong);
  at::Tensor h = x;
  for (size_t j = 0; j < weights.size(); ++j)
    h = checkpointed ? block_forward_checkpointed(config, weights[j], h, positions, rope, hooks[j])
                     : block_forward(config, weights[j], h, positions, rope, hooks[j]);
  return h;
}

int64_t tuning_graph_bytes(const ModelConfig& c, int64_t rows, int64_t T, int64_t nblocks, bool checkpointed) {
  const GraphBytes g = block_graph_bytes(c, rows, T, checkpointed);
  return nblocks * g.kept + g.transient;
}

bool use_checkpointing(const ModelConfig& c, const TuneOptions& opt, int64_t T, int64_t nblocks) {
  if (opt.checkpoint != Checkpoint::Auto) return opt.checkpoint == Checkpoint::On;
  return opt.graph_budget > 0 && tuning_graph_bytes(c, opt.batch_size, T, nblocks, false) > opt.graph_budget;
}

UnitResult quantize_unit(const ModelConfig& config, const LayerPlan& plan, const UnitInput& in,
                         const RopeTables& rope, const TuneOptions& opt) {
  const double t0 = now_seconds();
  std::vector<LayerJob> jobs = make_jobs(plan, in);
  const bool tuning = opt.method == Method::SignRound && opt.iters > 0 && !jobs.empty();
  nlohmann::json stats = {{"blocks", in.blocks}, {"method", method_name(opt, tuning)}};
  init_params(plan.blocks, jobs, in.imatrix, in.tokens, token_count(in.x_in) * opt.shards.count / opt.shards.local, opt,
              tuning);
  if (config.is_moe() && !in.tokens.empty()) stats["expert_tokens"] = expert_tokens(config, plan, in);
  if (tuning) {
    const std::vector<InputHook> hooks = unit_hooks(plan, in, jobs);
    TuneProblem pb;
    pb.samples = in.x_in.size(0);
    pb.seed = opt.seed * 1000003ULL + uint64_t(in.blocks.front());
    pb.batch_size = opt.batch_size;
    pb.accumulate = opt.gradient_accumulate_steps;
    pb.sum_reduction = opt.gradient_accumulate_steps > 1;
    pb.kind = loss_kind(jobs, opt);
    pb.what = "block " + std::to_string(in.blocks.front());
    const bool recompute = use_checkpointing(config, opt, in.x_in.size(1), int64_t(in.blocks.size()));
    stats["checkpoint"] = recompute;
    pb.predict = [&](const at::Tensor& rows) {
      return unit_forward(config, quantized_weights(plan.blocks, in, jobs), hooks, in.x_in.rows(rows).to(at::kFloat), rope,
                          recompute);
    };
    pb.target = [&](const at::Tensor& rows) { return in.y_ref.rows(rows).to(at::kFloat); };
    pb.mask = [&](const at::Tensor& rows) { return in.mask.index_select(0, rows); };
    stats.update(tune(pb, jobs, opt));
  }
  UnitResult r;
  r.layers = encode_jobs(jobs);
  r.quantized = in.fp;
  for (size_t k = 0; k < jobs.size(); ++k) r.quantized[jobs[k].pos].weight(jobs[k].choice->linear) = r.layers[k].dequantized();
  stats["seconds"] = now_seconds() - t0;
  r.stats = stats;
  return r;
}

UnitResult quantize_head(const LayerPlan& plan, const HeadInput& in, const TuneOptions& opt) {
  const double t0 = now_seconds();
  const LayerChoice* c = plan.find("lm_head");
  SR_CHECK(c && c->quantized(), "[signround] quantize_head: lm_head is not quantized in the plan");
  std::vector<LayerJob> jobs = {{c, 0, in.weight.detach().to(at::kFloat), {}, 0, 0, {}}};
  jobs[0].act.act_max = in.act_max;
  const bool tuning = opt.method == Method::SignRound && opt.iters > 0 && in.x_q.defined();
  nlohmann::json stats = {{"layer", "lm_head"}, {"method", method_name(opt, tuning)}};
  std::map<std::string, at::Tensor> imatrix;
  if (in.imatrix.defined()) imatrix["lm_head"] = in.imatrix;
  init_params(plan.blocks, jobs, imatrix, {}, in.tokens >= 0 ? in.tokens : token_count(in.x_fp), opt, tuning);
  if (tuning) {
    // §2.7: lm_head is tuned alone on its cached inputs, one sample per forward with the
    // mini-batch accumulated (reduction "sum"), against the FP layer's logits.
    const QuantScheme& s = c->scheme;
    const ActQuantState act = jobs[0].act;
    TuneProblem pb;
    pb.samples = in.x_q.size(0);
    pb.seed = opt.seed * 1000003ULL + 999983ULL;
    pb.batch_size = 1;
    pb.accumulate = opt.batch_size * opt.gradient_accumulate_steps;
    pb.sum_reduction = true;
    pb.kind = LossKind::MaskedMse;
    pb.what = "lm_head";
    pb.predict = [&](const at::Tensor& rows) {
      auto x = qdq_act(in.x_q.rows(rows).to(at::kFloat), s, act);
      return at::linear(x, qdq_weight(jobs[0].w, s, jobs[0].p).w_hat);
    };
    pb.target = [&](const at::Tensor& rows) {
      at::NoGradGuard ng;
      return at::linear(in.x_fp.rows(rows).to(at::kFloat), jobs[0].w);
    };
    pb.mask = [&](const at::Tensor& rows) { return in.mask.index_select(0, rows); };
    stats.update(tune(pb, jobs, opt));
  }
  UnitResult r;
  r.layers = encode_jobs(jobs);
  stats["seconds"] = now_seconds() - t0;
  r.stats = stats;
  return r;
}

}  // namespace sr
