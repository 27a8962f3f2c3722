#include "common/checkpoint.h"

#include <ATen/autocast_mode.h>

#include "common/error.h"

namespace sr {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The autocast settings of both device types, as the forward ran; restored around the recompute
// so that its matmuls take the same dtypes. Autocast's cache of casts stays off inside: the
// recompute's inputs are fresh leaves, and the cache would keep their copies until the
// outermost autocast scope ends (common/amp.h).
struct AutocastState {
  bool cpu = false, gpu = false;
  at::ScalarType cpu_dtype = at::kBFloat16, gpu_dtype = at::kHalf;
  static AutocastState now() {
    return {at::autocast::is_cpu_enabled(), at::autocast::is_enabled(), at::autocast::get_autocast_cpu_dtype(),
            at::autocast::get_autocast_gpu_dtype()};
  }
  void apply() const {
    at::autocast::set_cpu_enabled(cpu);
    at::autocast::set_enabled(gpu);
    at::autocast::set_autocast_cpu_dtype(cpu_dtype);
    at::autocast::set_autocast_gpu_dtype(gpu_dtype);
  }
};

class AutocastAs {
 public:
  explicit AutocastAs(const AutocastState& s) : was_(AutocastState::now()), was_caching_(at::autocast::is_autocast_cache_enabled()) {
    at::autocast::set_autocast_cache_enabled(false);
    s.apply();
  }
  ~AutocastAs() {
    was_.apply();
    at::autocast::set_autocast_cache_enabled(was_caching_);
  }

 private:
  AutocastState was_;
  bool was_caching_;
};

// What the backward needs besides the inputs, kept in the context as a capsule.
struct Recompute : torch::CustomClassHolder {
  CheckpointFn fn;
  AutocastState autocast;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static variable_list forward(AutogradContext* ctx, const c10::intrusive_ptr<Recompute>& r, at::TensorList inputs) {
    // Function::apply runs this with grad mode off: fn records no graph.
    variable_list in(inputs.begin(), inputs.end());
    variable_list out = r->fn(in);
    ctx->save_for_backward(in);
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(r);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto r = c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["recompute"].toCapsule());
    const variable_list saved = ctx->get_saved_variables();
    variable_list in;
    for (const at::Tensor& t : saved) in.push_back(t.defined() ? t.detach().requires_grad_(t.requires_grad()) : t);
    variable_list out;
    {
      at::AutoGradMode grad(true);
      AutocastAs amp(r->autocast);
      out = r->fn(in);
    }
    SR_CHECK(out.size() == grad_out.size(), "[checkpoint] the recompute returned ", out.size(), " tensors, the forward ",
             grad_out.size());
    variable_list roots, grads;
    for (size_t i = 0; i < out.size(); ++i)
      if (out[i].requires_grad() && grad_out[i].defined()) {
        roots.push_back(out[i]);
        grads.push_back(grad_out[i]);
      }
    // Outside the recompute's autocast scope: the backward ops run as the outer backward's do.
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    variable_list result = {at::Tensor()};  // the Recompute argument has no gradient
    for (const at::Tensor& t : in) result.push_back(t.defined() && t.requires_grad() ? t.grad() : at::Tensor());
    return result;
  }
};

}  // namespace

std::vector<at::Tensor> checkpoint(CheckpointFn fn, const std::vector<at::Tensor>& inputs) {
  if (!at::GradMode::is_enabled()) return fn(inputs);
  auto r = c10::make_intrusive<Recompute>();
  r->autocast = AutocastState::now();
  std::vector<at::Tensor> in = inputs;
  bool any = false;
  for (const at::Tensor& t : in) any |= t.defined() && t.requires_grad();
  if (!any) {
    // No input needs a gradient, but fn may read leaves that do (its closure): a zero-size
    // input that requires one makes the outputs part of the graph, so that the backward comes.
    in.push_back(at::empty({0}).requires_grad_(true));
    r->fn = [fn = std::move(fn)](const std::vector<at::Tensor>& x) {
      return fn(std::vector<at::Tensor>(x.begin(), x.end() - 1));
    };
  } else {
    r->fn = std::move(fn);
  }
  return CheckpointFunction::apply(r, at::TensorList(in));
}

}  // namespace sr
