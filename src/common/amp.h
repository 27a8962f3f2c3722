// Mixed precision ("amp", auto-round's name for it): inside an AmpScope, libtorch's autocast runs
// the matmuls (linear, matmul, mm, bmm) in bf16 on the scope's device type; everything else keeps
// the dtype of its inputs, and mixed bf16/fp32 arithmetic promotes to fp32. So the residual stream,
// RMSNorm, RoPE, the softmax over fp32-masked scores, the losses and every fp32 leaf tensor
// (SignRound's v, α, β: their gradients come back through the cast in fp32) stay fp32, as
// torch.autocast leaves them. Callers keep their own exact arithmetic (weight qdq, activation qdq)
// in fp32 by casting its input up; the product is cast to bf16 where it enters a matmul.
#pragma once
#include <string>

#include "common/torch.h"

namespace sr {

// Whether bf16 matmuls run natively (and so faster than fp32) on `device`: on a CPU, the
// AVX512-BF16 or AMX-BF16 flags of /proc/cpuinfo (x86) or the "bf16" feature (aarch64); other
// device types (CUDA builds) are taken to support it. SIGNROUND_NO_BF16=1 in the environment
// answers false everywhere (tests simulate a CPU without it).
bool bf16_compute_supported(const at::Device& device);

// "bf16" or "fp32": what a run with amp set to `on` computes its matmuls in (run records).
inline std::string compute_dtype_name(bool on) { return on ? "bf16" : "fp32"; }

// Turns bf16 autocast on (`on`) or off for `device`'s type for its lifetime and restores the
// previous state after. Autocast's cache of bf16 copies of fp32 leaves is off inside: DeltaLoss
// makes each block's weights leaves, and the cache would hold every block's copy until the scope
// ends (half the model in bf16); no leaf here enters two matmuls, so it saves nothing.
// REQUIRES: CPU or CUDA device type.
class AmpScope {
 public:
  AmpScope(const at::Device& device, bool on);
  ~AmpScope();
  AmpScope(const AmpScope&) = delete;
  AmpScope& operator=(const AmpScope&) = delete;

 private:
  at::DeviceType type_;
  bool was_on_, was_caching_;
  at::ScalarType was_dtype_;
};

}  // namespace sr
