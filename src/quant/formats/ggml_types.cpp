// The traits table: one row per ggml type ID, in ID order. Codec and frozen-parameter entry
// points are the per-family functions (ggml_legacy.h, ggml_kquants.h), type-erased; every
// block type decodes through one loop over its hooks.
#include "quant/formats/ggml_types.h"

#include <array>
#include <cctype>
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "common/strings.h"
#include "quant/formats/ggml_iquants_grid.h"
#include "quant/formats/ggml_iquants_nl.h"
#include "quant/formats/ggml_kquants.h"
#include "quant/formats/ggml_legacy.h"

namespace sr {
namespace {

// ---- float types ----------------------------------------------------------------------

void dequantize_f32(const void* src, float* y, int64_t n) { std::memcpy(y, src, size_t(n) * 4); }
void quantize_f32(const float* x, void* dst, int64_t n) { std::memcpy(dst, x, size_t(n) * 4); }

// The 16-bit float types, element by element (common/half.h converts bit exactly).
template <float (*ToF32)(uint16_t)>
void dequantize_half(const void* src, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = ToF32(h[i]);
}
template <uint16_t (*FromF32)(float)>
void quantize_half(const float* x, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = FromF32(x[i]);
}

// Float types and Q8_0 have no importance-weighted path in ggml: the weights are ignored.
template <GgmlQuantizeRowRef Ref>
void ignore_weights(const float* x, void* dst, int64_t n, const float*) {
  Ref(x, dst, n);
}

// ---- scale checks (ggml_validate_row_data) ---------------------------------------------

// A float element (U: its bits) is finite unless its exponent field is all ones.
template <typename U, U kExponent>
bool float_finite(const uint8_t* p) {
  U u;
  std::memcpy(&u, p, sizeof(u));
  return (u & kExponent) != kExponent;
}
constexpr auto f32_finite = float_finite<uint32_t, 0x7f800000u>;
constexpr auto f16_finite = float_finite<uint16_t, 0x7c00u>;
constexpr auto bf16_finite = float_finite<uint16_t, 0x7f80u>;
// The fp16 scale fields of a block at byte offsets First (d) and Second (dmin or m; -1 = none).
template <int First, int Second = -1>
bool fp16_scales_finite(const uint8_t* blk) {
  return f16_finite(blk + First) && (Second < 0 || f16_finite(blk + Second));
}

// ---- type erasure of the block codecs --------------------------------------------------
// Blocks are copied into a properly aligned struct before use, so callers may pass any
// byte buffer.

// The k-quant row encoders run their one-super-block encoders (ggml_kquants.h) block by block.
template <typename Block, void (*F)(const float*, Block*)>
void kquant_row_ref(const float* x, void* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQkK; ++i) F(x + i * kQkK, static_cast<Block*>(dst) + i);
}
template <typename Block, void (*F)(const float*, Block*, const float*)>
void kquant_row_weighted(const float* x, void* dst, int64_t n, const float* w) {
  for (int64_t i = 0; i < n / kQkK; ++i) F(x + i * kQkK, static_cast<Block*>(dst) + i, w + i * kQkK);
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

// ---- decoding of the block types --------------------------------------------------------

// Every block type with frozen-parameter hooks decodes through them: per sub-block g, scale_g * q,
// minus min_g for the asymmetric types, in fp32 with q = c - 2^(bits-1) (sym) or c (asym).
// These are the products ggml's dequantize_row_* compute (Q4_1/Q5_1's d * c + m is
// d * c - min with min = -m, the same sum).
template <GgmlType Type>
void dequantize_blocks(const void* src, float* y, int64_t n) {
  const GgmlTypeTraits& tr = ggml_type_traits(Type);
  const GgmlBlockParams& h = tr.params;
  const int64_t block = tr.block_size;
  const int bias = h.asym ? 0 : 1 << (tr.bits - 1);
  uint8_t c[kQkK];
  float scale[kQkK / 16], min[kQkK / 16];
  for (int64_t b = 0; b < n / block; ++b) {
    h.unpack(static_cast<const uint8_t*>(src) + b * tr.type_size, c);
    h.decode(static_cast<const uint8_t*>(src) + b * tr.type_size, scale, min);
    for (int64_t e = 0; e < block; ++e) {
      const int64_t g = e / h.group;
      const int q = int(c[e]) - bias;
      y[b * block + e] = h.asym ? scale[g] * q - min[g] : scale[g] * q;
    }
  }
}

// ---- the table -------------------------------------------------------------------------

// Everything after uses_importance of a k-quant (ggml_kquants.h): codec, scale check (the fp16
// d at byte offset d_at, dmin at dmin_at or -1) and frozen-parameter hooks (sub-blocks of
// `group`, sub_scale_bits bits per sub-block scale code).
#define SR_GGML_KQUANT(Type, suffix, d_at, dmin_at, group, asym, sub_scale_bits)                        \
  dequantize_blocks<T::Type>, kquant_row_ref<Block##Type, quantize_block_##suffix##_ref>,              \
      kquant_row_weighted<Block##Type, quantize_block_##suffix##_weighted>,                            \
      fp16_scales_finite<d_at, dmin_at>,                                                               \
      { group, asym, sub_scale_bits, erase_unpack<Block##Type, unpack_codes_##suffix>,                 \
        erase_pack<Block##Type, pack_codes_##suffix>, erase_params<Block##Type, block_params_##suffix>, \
        nullptr, nullptr }
// Everything after uses_importance of a legacy type (ggml_legacy.h): codec, scale check (d,
// and m of Q4_1/Q5_1) and frozen-parameter hooks (the sub-block is the block of 32).
#define SR_GGML_LEGACY(Type, asym)                                                                \
  dequantize_blocks<T::Type>, Legacy##Type::quantize_row_ref, Legacy##Type::quantize_row_weighted, \
      fp16_scales_finite<0, asym ? 2 : -1>,                                                        \
      { 32, asym, 0, Legacy##Type::unpack, Legacy##Type::pack, Legacy##Type::decode,               \
        Legacy##Type::ref_params, Legacy##Type::ref_code }
// The legacy codecs: block, code bits, asym.
using LegacyQ4_0 = LegacyCodec<BlockQ4_0, 4, false>;
using LegacyQ4_1 = LegacyCodec<BlockQ4_1, 4, true>;
using LegacyQ5_0 = LegacyCodec<BlockQ5_0, 5, false>;
using LegacyQ5_1 = LegacyCodec<BlockQ5_1, 5, true>;
using LegacyQ8_0 = LegacyCodec<BlockQ8_0, 8, false>;

// ---- the table / grid i-quants' frozen-rounding hooks (GgmlTableHooks) ----------------------

template <bool XS>
void iq4_scales(const void* blocks, int64_t n, float* scale) { iq4_row_scales(XS, blocks, n, scale); }

template <bool XS>
void iq4_frozen(const void* blocks, const float* x, const float* /*w*/, const float* v, int64_t n, void* out,
                float* w_hat, float* dv) {
  if (out) {
    std::memcpy(out, blocks, ggml_row_bytes(XS ? GgmlType::IQ4_XS : GgmlType::IQ4_NL, n));
    iq4_encode_row_frozen(XS, out, x, v, n);
  }
  if (w_hat) iq4_qdq_row_frozen(XS, blocks, x, v, n, w_hat, dv);
}

template <bool XS>
void iq4_values(const void* blocks, int64_t n, int16_t* q) {
  std::vector<uint8_t> c(static_cast<size_t>(n));
  iq4_unpack_row(XS, blocks, n, c.data());
  for (int64_t e = 0; e < n; ++e) q[e] = kIq4nlValues[c[size_t(e)]];
}

template <GgmlType Ty>
void grid_scales(const void* blocks, int64_t n, float* scale) { iq_grid_row_scales(Ty, blocks, n, scale); }
template <GgmlType Ty>
void grid_weights(const float* x, const float* importance, int64_t n, float* w) {
  iq_grid_weights(Ty, x, importance, n, w);
}
template <GgmlType Ty>
void grid_frozen(const void* blocks, const float* x, const float* w, const float* v, int64_t n, void* out,
                 float* w_hat, float* dv) {
  iq_grid_frozen_row(Ty, blocks, x, w, v, n, out, w_hat, dv);
}
template <GgmlType Ty>
void grid_values(const void* blocks, int64_t n, int16_t* q) { iq_grid_unpack_values(Ty, blocks, n, q); }

using T = GgmlType;
#define SR_GGML_LAYOUT_ONLY false, nullptr, nullptr, nullptr, nullptr, {}
// Everything after uses_importance of a lattice i-quant (ggml_iquants_grid.h): codec, scale
// check, no linear frozen-parameter hooks, whether llama.cpp requires an imatrix for it, and
// its table hooks: sub-block, largest |level| (IQ1's -1..1 before the delta).
// `finite` is the scale check: the fp16 d at offset 0, or IQ1_M's d spread over its scales.
#define SR_GGML_IQ_GRID(Ty, suffix, finite, requires_importance, group, top)                           \
  dequantize_row_##suffix, quantize_row_##suffix##_ref, quantize_row_##suffix##_weighted, finite, {},  \
      requires_importance, {                                                                           \
    group, -(top), top, grid_scales<T::Ty>, grid_weights<T::Ty>, grid_frozen<T::Ty>, grid_values<T::Ty> \
  }
// IQ4_NL / IQ4_XS (ggml_iquants_nl.h): codes 0..15 index kIq4nlValues, 32-element sub-blocks.
#define SR_GGML_IQ4(suffix, xs)                                                                    \
  dequantize_row_##suffix, quantize_row_##suffix##_ref, quantize_row_##suffix##_weighted,          \
      fp16_scales_finite<0>, {}, false, {                                                          \
    kQkIq4Nl, 0, 15, iq4_scales<xs>, nullptr, iq4_frozen<xs>, iq4_values<xs>                       \
  }

// Known types in ID order (retired IDs are absent). Sizes are ggml's type_traits; scale
// field offsets and sub-block geometry are the layouts in ggml_legacy.h / ggml_kquants.h /
// ggml_iquants_nl.h / ggml_iquants_grid.h (the i-quants' codes index a table or a grid: their
// frozen hooks are `table`, not `params`).
// Columns: type, name, block_size, type_size, bits, uses_importance, dequantize_row,
// quantize_row_ref, quantize_row_weighted, block_finite, params, requires_importance, table.
const GgmlTypeTraits kTraits[] = {
    {T::F32, "f32", 1, 4, 32, false, dequantize_f32, quantize_f32, ignore_weights<quantize_f32>, f32_finite, {}},
    {T::F16, "f16", 1, 2, 16, false, dequantize_half<f16_to_f32>, quantize_half<f32_to_f16>,
     ignore_weights<quantize_half<f32_to_f16>>, f16_finite, {}},
    {T::Q4_0, "q4_0", 32, 18, 4, true, SR_GGML_LEGACY(Q4_0, false)},
    {T::Q4_1, "q4_1", 32, 20, 4, true, SR_GGML_LEGACY(Q4_1, true)},
    {T::Q5_0, "q5_0", 32, 22, 5, true, SR_GGML_LEGACY(Q5_0, false)},
    {T::Q5_1, "q5_1", 32, 24, 5, true, SR_GGML_LEGACY(Q5_1, true)},
    {T::Q8_0, "q8_0", 32, 34, 8, false, SR_GGML_LEGACY(Q8_0, false)},
    {T::Q8_1, "q8_1", 32, 36, 8, SR_GGML_LAYOUT_ONLY},
    {T::Q2_K, "q2_K", 256, 84, 2, true, SR_GGML_KQUANT(Q2_K, q2_K, 80, 82, 16, true, 4)},
    {T::Q3_K, "q3_K", 256, 110, 3, true, SR_GGML_KQUANT(Q3_K, q3_K, 108, -1, 16, false, 6)},
    {T::Q4_K, "q4_K", 256, 144, 4, true, SR_GGML_KQUANT(Q4_K, q4_K, 0, 2, 32, true, 6)},
    {T::Q5_K, "q5_K", 256, 176, 5, true, SR_GGML_KQUANT(Q5_K, q5_K, 0, 2, 32, true, 6)},
    {T::Q6_K, "q6_K", 256, 210, 6, true, SR_GGML_KQUANT(Q6_K, q6_K, 208, -1, 16, false, 8)},
    {T::Q8_K, "q8_K", 256, 292, 8, SR_GGML_LAYOUT_ONLY},
    {T::IQ2_XXS, "iq2_xxs", 256, 66, 2, true, SR_GGML_IQ_GRID(IQ2_XXS, iq2_xxs, fp16_scales_finite<0>, true, 32, 43)},
    {T::IQ2_XS, "iq2_xs", 256, 74, 2, true, SR_GGML_IQ_GRID(IQ2_XS, iq2_xs, fp16_scales_finite<0>, true, 16, 43)},
    {T::IQ3_XXS, "iq3_xxs", 256, 98, 3, true, SR_GGML_IQ_GRID(IQ3_XXS, iq3_xxs, fp16_scales_finite<0>, false, 32, 62)},
    {T::IQ1_S, "iq1_s", 256, 50, 1, true, SR_GGML_IQ_GRID(IQ1_S, iq1_s, fp16_scales_finite<0>, true, 32, 1)},
    {T::IQ4_NL, "iq4_nl", 32, 18, 4, true, SR_GGML_IQ4(iq4_nl, false)},
    {T::IQ3_S, "iq3_s", 256, 110, 3, true, SR_GGML_IQ_GRID(IQ3_S, iq3_s, fp16_scales_finite<0>, false, 32, 15)},
    {T::IQ2_S, "iq2_s", 256, 82, 2, true, SR_GGML_IQ_GRID(IQ2_S, iq2_s, fp16_scales_finite<0>, true, 16, 43)},
    {T::IQ4_XS, "iq4_xs", 256, 136, 4, true, SR_GGML_IQ4(iq4_xs, true)},
    {T::I8, "i8", 1, 1, 8, SR_GGML_LAYOUT_ONLY},
    {T::I16, "i16", 1, 2, 16, SR_GGML_LAYOUT_ONLY},
    {T::I32, "i32", 1, 4, 32, SR_GGML_LAYOUT_ONLY},
    {T::I64, "i64", 1, 8, 64, SR_GGML_LAYOUT_ONLY},
    {T::F64, "f64", 1, 8, 64, SR_GGML_LAYOUT_ONLY},
    // IQ1_M needs no imatrix as such: llama.cpp refuses it only inside the blocks (the plan's
    // check, export/gguf_plan.cpp) and writes output / token_embd without one (ggml's x² weights).
    {T::IQ1_M, "iq1_m", 256, 56, 1, true, SR_GGML_IQ_GRID(IQ1_M, iq1_m, iq1_m_block_finite, false, 16, 1)},
    {T::BF16, "bf16", 1, 2, 16, false, dequantize_half<bf16_to_f32>, quantize_half<f32_to_bf16>,
     ignore_weights<quantize_half<f32_to_bf16>>, bf16_finite, {}},
    {T::TQ1_0, "tq1_0", 256, 54, 1, SR_GGML_LAYOUT_ONLY},
    {T::TQ2_0, "tq2_0", 256, 66, 2, SR_GGML_LAYOUT_ONLY},
};

#undef SR_GGML_LEGACY
#undef SR_GGML_KQUANT
#undef SR_GGML_LAYOUT_ONLY
#undef SR_GGML_IQ_GRID
#undef SR_GGML_IQ4

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
  for (GgmlType t : ggml_supported_types()) out += (out.empty() ? "" : ", ") + ggml_type_name(t);
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
