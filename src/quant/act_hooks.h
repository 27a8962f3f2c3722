// Activation quantization of a quantized model at inference: reads the
// quantization.json that export writes beside a model and installs, on the Model,
// input hooks that qdq each act-quantized layer's input (W4A4 / W8A8 / MX / NV
// schemes), with the calibrated act_max for static schemes. A folder without
// quantization.json but with a quantization_config in config.json (auto-round's own
// auto_round exports) gets its schemes from that config, and static NVFP4 activations the
// act_max whose global scale equals the stored <layer>.input_global_scale.
#pragma once
#include "model/model.h"

namespace sr {

// Returns the number of layers whose activations are quantized (0: nothing
// installed, e.g. weight-only schemes or no quantization record). Throws naming the
// file if it is malformed.
int install_activation_quantization(Model& model);

}  // namespace sr
