// The traits table: one row per ggml type ID, in ID order. Codec and frozen-parameter entry
// points are type-erased wrappers around the per-family functions (ggml_legacy.h,
// ggml_kquants.h).
#include "quant/formats/ggml_types.h"

#include <array>
#include <cctype>
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "common/strings.h"
#include "quant/formats/ggml_kquants.h"
#include "quant/formats/ggml_legacy.h"
#include "quant/formats/ggml_legacy_rounding.h"

namespace sr {
namespace {

// ---- float types ----------------------------------------------------------------------

void dequantize_f32(const void* src, float* y, int64_t n) { std::memcpy(y, src, size_t(n) * 4); }
void quantize_f32(const float* x, void* dst, int64_t n) { std::memcpy(dst, x, size_t(n) * 4); }

void dequantize_f16(const void* src, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(h[i]);
}
void quantize_f16(const float* x, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(x[i]);
}

void dequantize_bf16(const void* src, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(h[i]);
}
void quantize_bf16(const float* x, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(x[i]);
}

// Float types and Q8_0 have no importance-weighted path in ggml: the weights are ignored.
template <GgmlQuantizeRowRef Ref>
void ignore_weights(const float* x, void* dst, int64_t n, const float*) {
  Ref(x, dst, n);
}

// ---- scale checks (ggml_validate_row_data) ---------------------------------------------

bool f16_finite(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return (h & 0x7c00u) != 0x7c00u;
}
bool f32_finite(const uint8_t* p) {
  uint32_t u;
  std::memcpy(&u, p, 4);
  return (u & 0x7f800000u) != 0x7f800000u;
}
bool bf16_finite(const uint8_t* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return (b & 0x7f80u) != 0x7f80u;
}
// The fp16 scale fields of a block at byte offsets First (d) and Second (dmin or m; -1 = none).
template <int First, int Second = -1>
bool fp16_scales_finite(const uint8_t* blk) {
  return f16_finite(blk + First) && (Second < 0 || f16_finite(blk + Second));
}

// ---- type erasure of the block codecs --------------------------------------------------
// Blocks are copied into a properly aligned struct before use, so callers may pass any
// byte buffer.

template <typename Block, void (*F)(const Block*, float*, int64_t)>
void erase_dequant(const void* src, float* y, int64_t n) {
  F(static_cast<const Block*>(src), y, n);
}
template <typename Block, void (*F)(const float*, Block*, int64_t)>
void erase_ref(const float* x, void* dst, int64_t n) {
  F(x, static_cast<Block*>(dst), n);
}
template <typename Block, void (*F)(const float*, Block*, int64_t, const float*)>
void erase_weighted(const float* x, void* dst, int64_t n, const float* w) {
  F(x, static_cast<Block*>(dst), n, w);
}

template <typename Block, void (*Unpack)(const Block&, uint8_t*)>
void erase_unpack(const uint8_t* p, uint8_t* codes) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  Unpack(b, codes);
}
template <typename Block, void (*Pack)(const uint8_t*, Block*)>
void erase_pack(const uint8_t* codes, uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  Pack(codes, &b);
  std::memcpy(p, &b, sizeof(b));
}
template <typename Block, void (*Params)(const Block&, float*, float*)>
void erase_params(const uint8_t* p, float* scale, float* min) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  Params(b, scale, min);
}

// ---- legacy blocks: one sub-block of 32; the ref rounding rules ------------------------

// Symmetric types have no min, Q4_1/Q5_1 add m (= -min).
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

// Q4_0 (HalfRange 8), Q5_0 (16): d = signed absmax / -HalfRange.
template <int HalfRange>
void ref_params_sym(const float* xb, float* d, float* min) {
  *d = legacy_ref_sym_scale(xb, HalfRange);
  *min = 0.0f;
}
void ref_params_q8(const float* xb, float* d, float* min) {
  *d = legacy_ref_q8_scale(xb);
  *min = 0.0f;
}
// Q4_1 (CodeMax 15), Q5_1 (31): d = (max - min) / CodeMax.
template <int CodeMax>
void ref_params_asym(const float* xb, float* d, float* min) {
  legacy_ref_asym_scale(xb, CodeMax, d, min);
}

inline float inverse(float d) { return d ? 1.0f / d : 0.0f; }
template <int HalfRange>
int ref_code_sym(float x, float v, float d, float) {
  return legacy_ref_code_sym(x * inverse(d) + v, HalfRange);
}
int ref_code_q8(float x, float v, float d, float) { return legacy_ref_code_q8(x * inverse(d) + v); }
template <int CodeMax>
int ref_code_asym(float x, float v, float d, float min) {
  return legacy_ref_code_asym((x - min) * inverse(d) + v, CodeMax);
}

// ---- the table -------------------------------------------------------------------------

// dequantize, quantize_row_ref, quantize_row_weighted of a block type.
#define SR_GGML_CODEC(Block, suffix)                                                              \
  erase_dequant<Block, dequantize_row_##suffix>, erase_ref<Block, quantize_row_##suffix##_ref>, \
      erase_weighted<Block, quantize_row_##suffix##_weighted>
// unpack, pack, decode of the frozen-parameter hooks.
#define SR_GGML_CODES(Block, suffix, params)                                                       \
  erase_unpack<Block, unpack_codes_##suffix>, erase_pack<Block, pack_codes_##suffix>, \
      erase_params<Block, params>
// The frozen-parameter hooks of a legacy type (sub-block = block of 32).
#define SR_GGML_LEGACY(Block, suffix, asym, params, ref_params, ref_code) \
  { 32, asym, 0, SR_GGML_CODES(Block, suffix, params), ref_params, ref_code }
// The frozen-parameter hooks of a k-quant.
#define SR_GGML_KQUANT(Block, suffix, group, asym, sub_scale_bits) \
  { group, asym, sub_scale_bits, SR_GGML_CODES(Block, suffix, block_params_##suffix), nullptr, nullptr }

using T = GgmlType;
#define SR_GGML_LAYOUT_ONLY false, nullptr, nullptr, nullptr, nullptr, {}

// Known types in ID order (retired IDs are absent). Sizes are ggml's type_traits; scale
// field offsets and sub-block geometry are the layouts in ggml_legacy.h / ggml_kquants.h.
// Columns: type, name, block_size, type_size, bits, uses_importance, dequantize_row,
// quantize_row_ref, quantize_row_weighted, block_finite, params.
const GgmlTypeTraits kTraits[] = {
    {T::F32, "f32", 1, 4, 32, false, dequantize_f32, quantize_f32, ignore_weights<quantize_f32>, f32_finite, {}},
    {T::F16, "f16", 1, 2, 16, false, dequantize_f16, quantize_f16, ignore_weights<quantize_f16>, f16_finite, {}},
    {T::Q4_0, "q4_0", 32, 18, 4, true, SR_GGML_CODEC(BlockQ4_0, q4_0), fp16_scales_finite<0>,
     SR_GGML_LEGACY(BlockQ4_0, q4_0, false, legacy_sym_params<BlockQ4_0>, ref_params_sym<8>, ref_code_sym<8>)},
    {T::Q4_1, "q4_1", 32, 20, 4, true, SR_GGML_CODEC(BlockQ4_1, q4_1), fp16_scales_finite<0, 2>,
     SR_GGML_LEGACY(BlockQ4_1, q4_1, true, legacy_asym_params<BlockQ4_1>, ref_params_asym<15>, ref_code_asym<15>)},
    {T::Q5_0, "q5_0", 32, 22, 5, true, SR_GGML_CODEC(BlockQ5_0, q5_0), fp16_scales_finite<0>,
     SR_GGML_LEGACY(BlockQ5_0, q5_0, false, legacy_sym_params<BlockQ5_0>, ref_params_sym<16>, ref_code_sym<16>)},
    {T::Q5_1, "q5_1", 32, 24, 5, true, SR_GGML_CODEC(BlockQ5_1, q5_1), fp16_scales_finite<0, 2>,
     SR_GGML_LEGACY(BlockQ5_1, q5_1, true, legacy_asym_params<BlockQ5_1>, ref_params_asym<31>, ref_code_asym<31>)},
    {T::Q8_0, "q8_0", 32, 34, 8, false, erase_dequant<BlockQ8_0, dequantize_row_q8_0>,
     erase_ref<BlockQ8_0, quantize_row_q8_0_ref>, ignore_weights<erase_ref<BlockQ8_0, quantize_row_q8_0_ref>>,
     fp16_scales_finite<0>,
     SR_GGML_LEGACY(BlockQ8_0, q8_0, false, legacy_sym_params<BlockQ8_0>, ref_params_q8, ref_code_q8)},
    {T::Q8_1, "q8_1", 32, 36, 8, SR_GGML_LAYOUT_ONLY},
    {T::Q2_K, "q2_K", 256, 84, 2, true, SR_GGML_CODEC(BlockQ2_K, q2_K), fp16_scales_finite<80, 82>,
     SR_GGML_KQUANT(BlockQ2_K, q2_K, 16, true, 4)},
    {T::Q3_K, "q3_K", 256, 110, 3, true, SR_GGML_CODEC(BlockQ3_K, q3_K), fp16_scales_finite<108>,
     SR_GGML_KQUANT(BlockQ3_K, q3_K, 16, false, 6)},
    {T::Q4_K, "q4_K", 256, 144, 4, true, SR_GGML_CODEC(BlockQ4_K, q4_K), fp16_scales_finite<0, 2>,
     SR_GGML_KQUANT(BlockQ4_K, q4_K, 32, true, 6)},
    {T::Q5_K, "q5_K", 256, 176, 5, true, SR_GGML_CODEC(BlockQ5_K, q5_K), fp16_scales_finite<0, 2>,
     SR_GGML_KQUANT(BlockQ5_K, q5_K, 32, true, 6)},
    {T::Q6_K, "q6_K", 256, 210, 6, true, SR_GGML_CODEC(BlockQ6_K, q6_K), fp16_scales_finite<208>,
     SR_GGML_KQUANT(BlockQ6_K, q6_K, 16, false, 8)},
    {T::Q8_K, "q8_K", 256, 292, 8, SR_GGML_LAYOUT_ONLY},
    {T::IQ2_XXS, "iq2_xxs", 256, 66, 2, SR_GGML_LAYOUT_ONLY},
    {T::IQ2_XS, "iq2_xs", 256, 74, 2, SR_GGML_LAYOUT_ONLY},
    {T::IQ3_XXS, "iq3_xxs", 256, 98, 3, SR_GGML_LAYOUT_ONLY},
    {T::IQ1_S, "iq1_s", 256, 50, 1, SR_GGML_LAYOUT_ONLY},
    {T::IQ4_NL, "iq4_nl", 32, 18, 4, SR_GGML_LAYOUT_ONLY},
    {T::IQ3_S, "iq3_s", 256, 110, 3, SR_GGML_LAYOUT_ONLY},
    {T::IQ2_S, "iq2_s", 256, 82, 2, SR_GGML_LAYOUT_ONLY},
    {T::IQ4_XS, "iq4_xs", 256, 136, 4, SR_GGML_LAYOUT_ONLY},
    {T::I8, "i8", 1, 1, 8, SR_GGML_LAYOUT_ONLY},
    {T::I16, "i16", 1, 2, 16, SR_GGML_LAYOUT_ONLY},
    {T::I32, "i32", 1, 4, 32, SR_GGML_LAYOUT_ONLY},
    {T::I64, "i64", 1, 8, 64, SR_GGML_LAYOUT_ONLY},
    {T::F64, "f64", 1, 8, 64, SR_GGML_LAYOUT_ONLY},
    {T::IQ1_M, "iq1_m", 256, 56, 1, SR_GGML_LAYOUT_ONLY},
    {T::BF16, "bf16", 1, 2, 16, false, dequantize_bf16, quantize_bf16, ignore_weights<quantize_bf16>, bf16_finite, {}},
    {T::TQ1_0, "tq1_0", 256, 54, 1, SR_GGML_LAYOUT_ONLY},
    {T::TQ2_0, "tq2_0", 256, 66, 2, SR_GGML_LAYOUT_ONLY},
};

#undef SR_GGML_CODEC
#undef SR_GGML_CODES
#undef SR_GGML_LEGACY
#undef SR_GGML_KQUANT
#undef SR_GGML_LAYOUT_ONLY

// ID -> row of kTraits, or nullptr for retired / out-of-range IDs.
const std::array<const GgmlTypeTraits*, kGgmlTypeIdEnd>& traits_by_id() {
  static const auto table = [] {
    std::array<const GgmlTypeTraits*, kGgmlTypeIdEnd> t{};
    for (const auto& tr : kTraits) t[uint32_t(tr.type)] = &tr;
    return t;
  }();
  return table;
}

}  // namespace

bool ggml_type_id_known(uint32_t id) { return id < kGgmlTypeIdEnd && traits_by_id()[id] != nullptr; }

const GgmlTypeTraits& ggml_type_traits(GgmlType type) {
  const uint32_t id = uint32_t(type);
  SR_CHECK(ggml_type_id_known(id), "[ggml] unknown ggml type id ", id,
           " (ggml defines ids 0..", kGgmlTypeIdEnd - 1, " except the retired 4, 5, 31-33, 36-38)");
  return *traits_by_id()[id];
}

const GgmlTypeTraits& ggml_codec(GgmlType type) {
  const GgmlTypeTraits& tr = ggml_type_traits(type);
  SR_CHECK(tr.supported(), "[ggml] type ", tr.name, " (id ", uint32_t(type),
           ") cannot be encoded or decoded here; supported types: ", ggml_supported_type_names());
  return tr;
}

std::string ggml_type_name(GgmlType type) {
  const uint32_t id = uint32_t(type);
  if (!ggml_type_id_known(id)) return "unknown(" + std::to_string(id) + ")";
  return traits_by_id()[id]->name;
}

GgmlType ggml_type_from_name(const std::string& name) {
  const std::string want = ascii_lower(name);
  for (const auto& tr : kTraits) {
    if (ascii_lower(tr.name) == want) return tr.type;
  }
  std::string known;
  for (const auto& tr : kTraits) known += std::string(known.empty() ? "" : ", ") + tr.name;
  fail("[ggml] unknown ggml type name '", name, "'; known: ", known);
}

std::vector<GgmlType> ggml_supported_types() {
  std::vector<GgmlType> out;
  for (const auto& tr : kTraits) {
    if (tr.supported()) out.push_back(tr.type);
  }
  return out;
}

std::string ggml_supported_type_names() {
  std::string out;
  for (const auto& tr : kTraits) {
    if (!tr.supported()) continue;
    out += out.empty() ? "" : ", ";
    out += tr.name;
  }
  return out;
}

std::vector<GgmlType> ggml_block_param_types() {
  std::vector<GgmlType> out;
  for (const auto& tr : kTraits) {
    if (tr.has_block_params()) out.push_back(tr.type);
  }
  return out;
}

int64_t ggml_first_nonfinite_block(GgmlType type, const void* data, uint64_t nbytes) {
  const GgmlTypeTraits& tr = ggml_codec(type);
  SR_CHECK(nbytes % tr.type_size == 0, "[ggml] ", nbytes, " bytes are not a whole number of ", tr.name,
           " blocks (", tr.type_size, " bytes each)");
  const auto* p = static_cast<const uint8_t*>(data);
  const int64_t n_blocks = int64_t(nbytes / tr.type_size);
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (!tr.block_finite(p + b * tr.type_size)) return b;
  }
  return -1;
}

uint64_t ggml_row_bytes(GgmlType type, int64_t n) {
  const GgmlTypeTraits& tr = ggml_type_traits(type);
  SR_CHECK(n >= 0 && n % tr.block_size == 0, "[ggml] a ", tr.name, " row needs a multiple of ",
           tr.block_size, " elements, got ", n);
  return uint64_t(n / tr.block_size) * tr.type_size;
}

}  // namespace sr
