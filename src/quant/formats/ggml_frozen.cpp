// Frozen-parameter search / encode / qdq for the ggml block types (contract in
// ggml_frozen.h). One generic implementation over a small per-type descriptor:
// block geometry, code bias, and type-erased pack/unpack/params of one block.
#include "quant/formats/ggml_frozen.h"

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "quant/formats/ggml_kquants.h"
#include "quant/formats/ggml_legacy.h"
#include "quant/formats/ggml_legacy_rounding.h"
#include "quant/formats/ggml_quant_search.h"

namespace sr {
namespace {

// Blocks are copied into a properly aligned struct before use, so callers may pass
// any byte buffer.
struct BlockCodec {
  GgmlType type;
  int block;      // elements per block
  int group;      // elements per sub-block
  int bias;       // q = code - bias
  int code_top;   // largest unsigned code
  bool asym;
  void (*unpack)(const uint8_t* blk, uint8_t* codes);
  void (*pack)(const uint8_t* codes, uint8_t* blk);
  void (*params)(const uint8_t* blk, float* scale, float* min);  // [block / group] each
};

template <typename Block, void (*Unpack)(const Block&, uint8_t*)>
void erased_unpack(const uint8_t* p, uint8_t* codes) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  Unpack(b, codes);
}

template <typename Block, void (*Pack)(const uint8_t*, Block*)>
void erased_pack(const uint8_t* codes, uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  Pack(codes, &b);
  std::memcpy(p, &b, sizeof(b));
}

template <typename Block, void (*Params)(const Block&, float*, float*)>
void erased_params(const uint8_t* p, float* scale, float* min) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  Params(b, scale, min);
}

// Legacy blocks: one group; symmetric types have no min, Q4_1/Q5_1 add m (= -min).
template <typename Block>
void legacy_sym_params(const Block& b, float* scale, float* min) {
  scale[0] = f16_to_f32(b.d);
  min[0] = 0.0f;
}
template <typename Block>
void legacy_asym_params(const Block& b, float* scale, float* min) {
  scale[0] = f16_to_f32(b.d);
  min[0] = -f16_to_f32(b.m);
}

#define SR_CODEC(Block, suffix, params_fn)                                     \
  erased_unpack<Block, unpack_codes_##suffix>, erased_pack<Block, pack_codes_##suffix>, \
      erased_params<Block, params_fn>

const BlockCodec kCodecs[] = {
    {GgmlType::Q4_0, 32, 32, 8, 15, false, SR_CODEC(BlockQ4_0, q4_0, legacy_sym_params<BlockQ4_0>)},
    {GgmlType::Q4_1, 32, 32, 0, 15, true, SR_CODEC(BlockQ4_1, q4_1, legacy_asym_params<BlockQ4_1>)},
    {GgmlType::Q5_0, 32, 32, 16, 31, false, SR_CODEC(BlockQ5_0, q5_0, legacy_sym_params<BlockQ5_0>)},
    {GgmlType::Q5_1, 32, 32, 0, 31, true, SR_CODEC(BlockQ5_1, q5_1, legacy_asym_params<BlockQ5_1>)},
    {GgmlType::Q8_0, 32, 32, 128, 255, false, SR_CODEC(BlockQ8_0, q8_0, legacy_sym_params<BlockQ8_0>)},
    {GgmlType::Q2_K, 256, 16, 0, 3, true, SR_CODEC(BlockQ2_K, q2_K, block_params_q2_K)},
    {GgmlType::Q3_K, 256, 16, 4, 7, false, SR_CODEC(BlockQ3_K, q3_K, block_params_q3_K)},
    {GgmlType::Q4_K, 256, 32, 0, 15, true, SR_CODEC(BlockQ4_K, q4_K, block_params_q4_K)},
    {GgmlType::Q5_K, 256, 32, 0, 31, true, SR_CODEC(BlockQ5_K, q5_K, block_params_q5_K)},
    {GgmlType::Q6_K, 256, 16, 32, 63, false, SR_CODEC(BlockQ6_K, q6_K, block_params_q6_K)},
};
#undef SR_CODEC

const BlockCodec* find_codec(GgmlType type) {
  for (const auto& c : kCodecs) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

const BlockCodec& codec_for(GgmlType type) {
  const BlockCodec* c = find_codec(type);
  SR_CHECK(c, "[ggml] type ", ggml_type_name(type),
           " has no block parameters to search or freeze (only q4_0 q4_1 q5_0 q5_1 q8_0 "
           "q2_K q3_K q4_K q5_K q6_K)");
  return *c;
}

bool is_legacy(GgmlType t) {
  return t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q5_0 || t == GgmlType::Q5_1 ||
         t == GgmlType::Q8_0;
}

// Fills everything but ref_scale/ref_min from stored blocks.
GgmlRowParams params_from_blocks(const BlockCodec& bc, const uint8_t* blocks, int64_t n) {
  GgmlRowParams p;
  p.type = bc.type;
  p.n = n;
  p.group = bc.group;
  p.asymmetric = bc.asym;
  p.code_min = -bc.bias;
  p.code_max = bc.code_top - bc.bias;
  const uint64_t bytes = ggml_row_bytes(bc.type, n);
  p.blocks.assign(blocks, blocks + bytes);
  p.scale.resize(size_t(n / bc.group));
  p.min.resize(size_t(n / bc.group));
  const uint32_t type_size = ggml_type_traits(bc.type).type_size;
  const int per_block = bc.block / bc.group;
  for (int64_t b = 0; b < n / bc.block; ++b) {
    bc.params(p.blocks.data() + b * type_size, &p.scale[size_t(b * per_block)], &p.min[size_t(b * per_block)]);
  }
  return p;
}

// The fp32 block scale/min llama.cpp's legacy ref encoder rounds against.
void fill_legacy_ref(GgmlRowParams& p, const float* x) {
  const int64_t nb = p.n / kQkLegacy;
  p.ref_scale.resize(size_t(nb));
  p.ref_min.assign(size_t(nb), 0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQkLegacy;
    switch (p.type) {
      case GgmlType::Q4_0: p.ref_scale[b] = legacy_ref_sym_scale(xb, 8); break;
      case GgmlType::Q5_0: p.ref_scale[b] = legacy_ref_sym_scale(xb, 16); break;
      case GgmlType::Q8_0: p.ref_scale[b] = legacy_ref_q8_scale(xb); break;
      case GgmlType::Q4_1: legacy_ref_asym_scale(xb, 15, &p.ref_scale[b], &p.ref_min[b]); break;
      case GgmlType::Q5_1: legacy_ref_asym_scale(xb, 31, &p.ref_scale[b], &p.ref_min[b]); break;
      default: break;
    }
  }
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

// Unsigned code of element e under llama.cpp's legacy ref rule for block b.
inline int legacy_ref_code(GgmlType type, float x, float v, float d32, float min32) {
  const float id = d32 ? 1.0f / d32 : 0.0f;
  switch (type) {
    case GgmlType::Q4_0: return legacy_ref_code_sym(x * id + v, 8);
    case GgmlType::Q5_0: return legacy_ref_code_sym(x * id + v, 16);
    case GgmlType::Q8_0: return legacy_ref_code_q8(x * id + v);
    case GgmlType::Q4_1: return legacy_ref_code_asym((x - min32) * id + v, 15);
    default: return legacy_ref_code_asym((x - min32) * id + v, 31);  // Q5_1
  }
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
  const uint32_t type_size = ggml_type_traits(p.type).type_size;
  bc.unpack(p.blocks.data() + b * type_size, codes);
  const bool llama_legacy = rounding == GgmlRounding::kLlamaRef && is_legacy(p.type);
  for (int i = 0; i < bc.block; ++i) {
    const int64_t e = b * bc.block + i;
    const size_t g = size_t(e / bc.group);
    if (!llama_legacy && !p.scale[g]) continue;  // decodes to -min whatever the code
    check_finite(p, x, v, e);
    const float ve = v ? v[e] : 0.0f;
    codes[i] = uint8_t(llama_legacy ? legacy_ref_code(p.type, x[e], ve, p.ref_scale[size_t(b)], p.ref_min[size_t(b)])
                                    : stored_grid_code(bc, x[e], ve, p.scale[g], p.min[g]));
  }
}

}  // namespace

bool ggml_has_block_params(GgmlType type) { return find_codec(type) != nullptr; }

GgmlRowParams ggml_search_row_ref(GgmlType type, const float* x, int64_t n) {
  const BlockCodec& bc = codec_for(type);
  std::vector<uint8_t> blocks(ggml_row_bytes(type, n));
  ggml_codec(type).quantize_row_ref(x, blocks.data(), n);
  GgmlRowParams p = params_from_blocks(bc, blocks.data(), n);
  if (is_legacy(type)) fill_legacy_ref(p, x);
  return p;
}

GgmlRowParams ggml_search_row_weighted(GgmlType type, const float* x, int64_t n, const float* weights) {
  const BlockCodec& bc = codec_for(type);
  SR_CHECK(weights, "[ggml] the weighted ", ggml_type_name(type), " search needs importance weights");
  std::vector<uint8_t> blocks(ggml_row_bytes(type, n));
  ggml_codec(type).quantize_row_weighted(x, blocks.data(), n, weights);
  GgmlRowParams p = params_from_blocks(bc, blocks.data(), n);
  if (type == GgmlType::Q8_0) fill_legacy_ref(p, x);  // llama.cpp's Q8_0 ignores the weights
  return p;
}

GgmlRowParams ggml_row_params_from_blocks(GgmlType type, const void* blocks, int64_t n) {
  return params_from_blocks(codec_for(type), static_cast<const uint8_t*>(blocks), n);
}

void ggml_encode_row_frozen(const GgmlRowParams& p, const float* x, const float* v, void* out,
                            GgmlRounding rounding) {
  const BlockCodec& bc = codec_for(p.type);
  check_params(p, bc);
  SR_CHECK(!(rounding == GgmlRounding::kLlamaRef && is_legacy(p.type)) ||
               p.ref_scale.size() == size_t(p.n / kQkLegacy),
           "[ggml] llama.cpp ref rounding of a ", ggml_type_name(p.type),
           " row needs the fp32 block scales of ggml_search_row_ref");
  auto* dst = static_cast<uint8_t*>(out);
  std::memcpy(dst, p.blocks.data(), p.blocks.size());
  const uint32_t type_size = ggml_type_traits(p.type).type_size;
  uint8_t codes[kQkK];
  for (int64_t b = 0; b < p.n / bc.block; ++b) {
    block_codes(p, bc, b, x, v, rounding, codes);
    bc.pack(codes, dst + b * type_size);
  }
}

void ggml_qdq_row_frozen(const GgmlRowParams& p, const float* x, const float* v, float* w_hat) {
  ggml_qdq_row_frozen_grad(p, x, v, w_hat, nullptr);
}

void ggml_qdq_row_frozen_grad(const GgmlRowParams& p, const float* x, const float* v, float* w_hat, float* dv) {
  const BlockCodec& bc = codec_for(p.type);
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
  const BlockCodec& bc = codec_for(type);
  ggml_row_bytes(type, n);  // validates n
  const uint32_t type_size = ggml_type_traits(type).type_size;
  const auto* src = static_cast<const uint8_t*>(blocks);
  uint8_t codes[kQkK];
  for (int64_t b = 0; b < n / bc.block; ++b) {
    bc.unpack(src + b * type_size, codes);
    for (int i = 0; i < bc.block; ++i) q[b * bc.block + i] = int16_t(int(codes[i]) - bc.bias);
  }
}

}  // namespace sr
