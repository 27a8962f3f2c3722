// Frozen-parameter search / encode / qdq for the ggml block types (contract in
// ggml_frozen.h). One generic implementation over the type's traits row (ggml_types.h):
// block geometry, code bits, and the type-erased pack/unpack/params/ref-rule hooks.
// Table / grid i-quants (IQ4_NL, IQ4_XS, IQ3_XXS … IQ1_M: codes index a table of levels or a
// grid) run through their row's table hooks instead (GgmlTableHooks): GgmlRowParams with the
// sub-block's stored scale, min 0, the hooks' code range, and the rounding's weights in `weights`.
#include "quant/formats/ggml_frozen.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "quant/formats/ggml_kquants.h"
#include "quant/formats/ggml_legacy.h"
#include "quant/formats/ggml_quant_search.h"

namespace sr {
namespace {

// The hooks of a type (ggml_types.h GgmlBlockParams) plus the code range they imply.
struct BlockCodec {
  const GgmlTypeTraits& tr;
  const GgmlBlockParams& hooks;
  int block;     // elements per block
  int group;     // elements per sub-block
  int bias;      // q = code - bias: 2^(bits-1) for symmetric types, 0 for asymmetric
  int code_top;  // largest unsigned code, 2^bits - 1
  bool asym;

  explicit BlockCodec(const GgmlTypeTraits& t)
      : tr(t), hooks(t.params), block(int(t.block_size)), group(t.params.group),
        bias(t.params.asym ? 0 : 1 << (t.bits - 1)), code_top((1 << t.bits) - 1), asym(t.params.asym) {}
  // llama.cpp's legacy ref encoder has its own rounding rule (ggml_frozen.h, kLlamaRef).
  bool legacy() const { return hooks.ref_code != nullptr; }
};

BlockCodec codec_for(GgmlType type) {
  const GgmlTypeTraits& tr = ggml_type_traits(type);
  if (!tr.has_block_params()) {
    std::string names;
    for (GgmlType t : ggml_block_param_types()) names += std::string(names.empty() ? "" : " ") + ggml_type_name(t);
    fail("[ggml] type ", tr.name, " has no block parameters to search or freeze (only ", names, ")");
  }
  return BlockCodec(tr);
}

// Fills everything but ref_scale/ref_min from stored blocks.
GgmlRowParams params_from_blocks(const BlockCodec& bc, const uint8_t* blocks, int64_t n) {
  GgmlRowParams p;
  p.type = bc.tr.type;
  p.n = n;
  p.group = bc.group;
  p.asymmetric = bc.asym;
  p.code_min = -bc.bias;
  p.code_max = bc.code_top - bc.bias;
  const uint64_t bytes = ggml_row_bytes(bc.tr.type, n);
  p.blocks.assign(blocks, blocks + bytes);
  p.scale.resize(size_t(n / bc.group));
  p.min.resize(size_t(n / bc.group));
  const uint32_t type_size = bc.tr.type_size;
  const int per_block = bc.block / bc.group;
  for (int64_t b = 0; b < n / bc.block; ++b) {
    bc.hooks.decode(p.blocks.data() + b * type_size, &p.scale[size_t(b * per_block)], &p.min[size_t(b * per_block)]);
  }
  return p;
}

// The fp32 block scale/min llama.cpp's legacy ref encoder rounds against.
void fill_legacy_ref(GgmlRowParams& p, const BlockCodec& bc, const float* x) {
  const int64_t nb = p.n / kQkLegacy;
  p.ref_scale.resize(size_t(nb));
  p.ref_min.resize(size_t(nb));
  for (int64_t b = 0; b < nb; ++b) bc.hooks.ref_params(x + b * kQkLegacy, &p.ref_scale[size_t(b)], &p.ref_min[size_t(b)]);
}

void check_params(const GgmlRowParams& p, const BlockCodec& bc) {
  const auto groups = size_t(p.n / bc.group);
  SR_CHECK(p.blocks.size() == ggml_row_bytes(p.type, p.n) && p.scale.size() == groups &&
               p.min.size() == groups && p.group == bc.group,
           "[ggml] inconsistent ", ggml_type_name(p.type), " row parameters: n = ", p.n, ", ",
           p.blocks.size(), " block bytes, ", p.scale.size(), " scales, ", p.min.size(),
           " mins, group ", p.group);
}

inline int clamp_nearest(float f, int lo, int hi) {
  const int l = ggml_search::nearest_int(f);
  return l < lo ? lo : (l > hi ? hi : l);
}

void check_finite(const GgmlRowParams& p, const float* x, const float* v, int64_t e) {
  SR_CHECK(std::isfinite(x[e]), "[ggml] cannot encode a ", ggml_type_name(p.type), " row: element ",
           e, " is ", x[e]);
  SR_CHECK(!v || std::isfinite(v[e]), "[ggml] cannot encode a ", ggml_type_name(p.type),
           " row: rounding offset v[", e, "] is ", v[e]);
}

// Unsigned code of element e under the stored-grid rule (group scale s != 0).
inline int stored_grid_code(const BlockCodec& bc, float x, float v, float s, float m) {
  if (bc.asym) return clamp_nearest((x + m) / s + v, 0, bc.code_top);
  return clamp_nearest(x / s + v, -bc.bias, bc.code_top - bc.bias) + bc.bias;
}

// d w_hat / d v of one element under the straight-through rule (ggml_frozen.h).
inline float offset_derivative(const BlockCodec& bc, const GgmlRowParams& p, float x, float v, size_t g) {
  const float s = p.scale[g];
  if (!s) return 0.0f;
  const int l = ggml_search::nearest_int(bc.asym ? (x + p.min[g]) / s + v : x / s + v);
  return l >= p.code_min && l <= p.code_max ? s : 0.0f;
}

// Codes of block b: starts from the stored (searched) codes and recomputes those the
// rounding rule defines.
void block_codes(const GgmlRowParams& p, const BlockCodec& bc, int64_t b, const float* x,
                 const float* v, GgmlRounding rounding, uint8_t* codes) {
  bc.hooks.unpack(p.blocks.data() + b * bc.tr.type_size, codes);
  const bool llama_legacy = rounding == GgmlRounding::kLlamaRef && bc.legacy();
  for (int i = 0; i < bc.block; ++i) {
    const int64_t e = b * bc.block + i;
    const size_t g = size_t(e / bc.group);
    if (!llama_legacy && !p.scale[g]) continue;  // decodes to -min whatever the code
    check_finite(p, x, v, e);
    const float ve = v ? v[e] : 0.0f;
    codes[i] = uint8_t(llama_legacy ? bc.hooks.ref_code(x[e], ve, p.ref_scale[size_t(b)], p.ref_min[size_t(b)])
                                    : stored_grid_code(bc, x[e], ve, p.scale[g], p.min[g]));
  }
}

// ---- the table / grid i-quants (GgmlTableHooks) -----------------------------------------------

GgmlRowParams table_params(const GgmlTypeTraits& tr, const uint8_t* blocks, int64_t n) {
  GgmlRowParams p;
  p.type = tr.type;
  p.n = n;
  p.group = tr.table.group;
  p.code_min = tr.table.code_min;
  p.code_max = tr.table.code_max;
  p.blocks.assign(blocks, blocks + ggml_row_bytes(tr.type, n));
  p.scale.resize(size_t(n / p.group));
  p.min.assign(size_t(n / p.group), 0.0f);
  tr.table.row_scales(p.blocks.data(), n, p.scale.data());
  return p;
}

GgmlRowParams table_search(const GgmlTypeTraits& tr, const float* x, int64_t n, const float* importance) {
  std::vector<uint8_t> blocks(ggml_row_bytes(tr.type, n));
  if (importance) tr.quantize_row_weighted(x, blocks.data(), n, importance);
  else tr.quantize_row_ref(x, blocks.data(), n);  // throws where llama.cpp refuses
  GgmlRowParams p = table_params(tr, blocks.data(), n);
  if (tr.table.row_weights) {
    p.weights.resize(size_t(n));
    tr.table.row_weights(x, importance, n, p.weights.data());
  }
  return p;
}

// Sizes only: the hooks check the x and v that set a code (GgmlTableHooks::frozen_row).
void table_check(const GgmlRowParams& p, const GgmlTypeTraits& tr) {
  SR_CHECK(p.blocks.size() == ggml_row_bytes(p.type, p.n) && p.group == tr.table.group &&
               p.scale.size() == size_t(p.n / p.group) && (p.weights.empty() || p.weights.size() == size_t(p.n)),
           "[ggml] inconsistent ", ggml_type_name(p.type), " row parameters: n = ", p.n, ", ", p.blocks.size(),
           " block bytes, ", p.scale.size(), " scales, ", p.weights.size(), " weights, group ", p.group);
}

const float* table_weights(const GgmlRowParams& p) { return p.weights.empty() ? nullptr : p.weights.data(); }

}  // namespace

bool ggml_has_block_params(GgmlType type) {
  if (!ggml_type_id_known(uint32_t(type))) return false;
  const GgmlTypeTraits& tr = ggml_type_traits(type);
  return tr.has_block_params() || tr.has_table();
}

GgmlRowParams ggml_search_row_ref(GgmlType type, const float* x, int64_t n) {
  const GgmlTypeTraits& tr = ggml_type_traits(type);
  if (tr.has_table()) return table_search(tr, x, n, nullptr);
  const BlockCodec bc = codec_for(type);
  std::vector<uint8_t> blocks(ggml_row_bytes(type, n));
  bc.tr.quantize_row_ref(x, blocks.data(), n);
  GgmlRowParams p = params_from_blocks(bc, blocks.data(), n);
  if (bc.legacy()) fill_legacy_ref(p, bc, x);
  return p;
}

GgmlRowParams ggml_search_row_weighted(GgmlType type, const float* x, int64_t n, const float* weights) {
  SR_CHECK(weights, "[ggml] the weighted ", ggml_type_name(type), " search needs importance weights");
  const GgmlTypeTraits& tr = ggml_type_traits(type);
  if (tr.has_table()) return table_search(tr, x, n, weights);
  const BlockCodec bc = codec_for(type);
  std::vector<uint8_t> blocks(ggml_row_bytes(type, n));
  bc.tr.quantize_row_weighted(x, blocks.data(), n, weights);
  GgmlRowParams p = params_from_blocks(bc, blocks.data(), n);
  // Where llama.cpp ignores the weights (Q8_0) this is the ref search, ref scales included.
  if (bc.legacy() && !bc.tr.uses_importance) fill_legacy_ref(p, bc, x);
  return p;
}

GgmlRowParams ggml_row_params_from_blocks(GgmlType type, const void* blocks, int64_t n) {
  const GgmlTypeTraits& tr = ggml_type_traits(type);
  if (tr.has_table()) return table_params(tr, static_cast<const uint8_t*>(blocks), n);
  const BlockCodec bc = codec_for(type);
  return params_from_blocks(bc, static_cast<const uint8_t*>(blocks), n);
}

void ggml_encode_row_frozen(const GgmlRowParams& p, const float* x, const float* v, void* out,
                            GgmlRounding rounding) {
  const GgmlTypeTraits& tr = ggml_type_traits(p.type);
  if (tr.has_table()) {  // one rounding rule, the table's: `rounding` is for the legacy types
    table_check(p, tr);
    tr.table.frozen_row(p.blocks.data(), x, table_weights(p), v, p.n, out, nullptr, nullptr);
    return;
  }
  const BlockCodec bc = codec_for(p.type);
  check_params(p, bc);
  SR_CHECK(!(rounding == GgmlRounding::kLlamaRef && bc.legacy()) ||
               p.ref_scale.size() == size_t(p.n / kQkLegacy),
           "[ggml] llama.cpp ref rounding of a ", ggml_type_name(p.type),
           " row needs the fp32 block scales of ggml_search_row_ref");
  auto* dst = static_cast<uint8_t*>(out);
  std::memcpy(dst, p.blocks.data(), p.blocks.size());
  uint8_t codes[kQkK];
  for (int64_t b = 0; b < p.n / bc.block; ++b) {
    block_codes(p, bc, b, x, v, rounding, codes);
    bc.hooks.pack(codes, dst + b * bc.tr.type_size);
  }
}

void ggml_qdq_row_frozen(const GgmlRowParams& p, const float* x, const float* v, float* w_hat) {
  ggml_qdq_row_frozen_grad(p, x, v, w_hat, nullptr);
}

void ggml_qdq_row_frozen_grad(const GgmlRowParams& p, const float* x, const float* v, float* w_hat, float* dv) {
  const GgmlTypeTraits& tr = ggml_type_traits(p.type);
  if (tr.has_table()) {
    table_check(p, tr);
    tr.table.frozen_row(p.blocks.data(), x, table_weights(p), v, p.n, nullptr, w_hat, dv);
    return;
  }
  const BlockCodec bc = codec_for(p.type);
  check_params(p, bc);
  uint8_t codes[kQkK];
  for (int64_t b = 0; b < p.n / bc.block; ++b) {
    block_codes(p, bc, b, x, v, GgmlRounding::kStoredGrid, codes);
    for (int i = 0; i < bc.block; ++i) {
      const int64_t e = b * bc.block + i;
      const size_t g = size_t(e / bc.group);
      const int q = int(codes[i]) - bc.bias;
      // Same operations as ggml's dequantize: (d*sc) * q, minus (dmin*m) for asym types.
      w_hat[e] = bc.asym ? p.scale[g] * q - p.min[g] : p.scale[g] * q;
      if (dv) dv[e] = offset_derivative(bc, p, x[e], v ? v[e] : 0.0f, g);
    }
  }
}

void ggml_unpack_row_codes(GgmlType type, const void* blocks, int64_t n, int16_t* q) {
  const GgmlTypeTraits& tr = ggml_type_traits(type);
  ggml_row_bytes(type, n);  // validates n
  if (tr.has_table()) return tr.table.unpack_values(blocks, n, q);
  const BlockCodec bc = codec_for(type);
  const auto* src = static_cast<const uint8_t*>(blocks);
  uint8_t codes[kQkK];
  for (int64_t b = 0; b < n / bc.block; ++b) {
    bc.hooks.unpack(src + b * bc.tr.type_size, codes);
    for (int i = 0; i < bc.block; ++i) q[b * bc.block + i] = int16_t(int(codes[i]) - bc.bias);
  }
}

}  // namespace sr
