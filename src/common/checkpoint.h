// Recomputation ("activation checkpointing") for libtorch C++, which has no
// torch.utils.checkpoint. checkpoint(fn, inputs) returns fn(inputs), but its forward records no
// graph: it keeps only the inputs. When the backward reaches it, fn runs again on them with
// grad mode on (and the autocast state of the forward), and the gradient flows back through that
// fresh graph, which is freed as soon as it has. The graph of fn so lives only during its own
// backward instead of from the forward to the end of the backward; the price is a second forward
// of fn.
//
// Gradients reach
//   - the tensors in `inputs`, returned to the outer graph as for any op (so a parameter computed
//     outside fn, e.g. a quantize-dequantized weight, passes its gradient on to what made it);
//   - any leaf tensor that fn reads from its closure (e.g. a weight it computes inside), whose
//     .grad the inner backward accumulates directly, as torch.utils.checkpoint's reentrant
//     variant does.
// The arithmetic is that of fn itself, op for op, forward and backward: the gradients equal
// those of calling fn directly (bit for bit as far as the ops are deterministic).
//
// REQUIRES: fn is deterministic (no random numbers, no state it changes: it runs twice); what
// its closure references outlives the backward. Without grad mode fn is simply called.
#pragma once
#include <functional>
#include <vector>

#include "common/torch.h"

namespace sr {

using CheckpointFn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>& inputs)>;

std::vector<at::Tensor> checkpoint(CheckpointFn fn, const std::vector<at::Tensor>& inputs);

}  // namespace sr
