// Activation quantization of a quantized model at inference: reads the
// quantization.json that export writes beside a model and installs, on the Model,
// input hooks that qdq each act-quantized layer's input (W4A4 / W8A8 / MX / NV
// schemes), with the calibrated act_max for static schemes.
#pragma once
#include "model/model.h"

namespace sr {

// Returns the number of layers whose activations are quantized (0: nothing
// installed, e.g. weight-only schemes or no quantization.json). Throws naming the
// file if it is malformed.
int install_activation_quantization(Model& model);

}  // namespace sr
