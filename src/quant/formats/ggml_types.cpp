// The traits table: one row per ggml type ID, in ID order. Codec entry points are
// type-erased wrappers around the per-family functions.
#include "quant/formats/ggml_types.h"

#include <array>
#include <cctype>
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "quant/formats/ggml_kquants.h"
#include "quant/formats/ggml_legacy.h"

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

// ---- type erasure of the block codecs --------------------------------------------------

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

#define SR_GGML_CODEC(Block, suffix)                                          \
  erase_dequant<Block, dequantize_row_##suffix>, erase_ref<Block, quantize_row_##suffix##_ref>, \
      erase_weighted<Block, quantize_row_##suffix##_weighted>

using T = GgmlType;
constexpr GgmlDequantizeRow kNoDequant = nullptr;
constexpr GgmlQuantizeRowRef kNoRef = nullptr;
constexpr GgmlQuantizeRowWeighted kNoWeighted = nullptr;
#define SR_GGML_LAYOUT_ONLY kNoDequant, kNoRef, kNoWeighted

// Known types in ID order (retired IDs are absent). Sizes are ggml's type_traits.
const GgmlTypeTraits kTraits[] = {
    {T::F32, "f32", 1, 4, dequantize_f32, quantize_f32, ignore_weights<quantize_f32>},
    {T::F16, "f16", 1, 2, dequantize_f16, quantize_f16, ignore_weights<quantize_f16>},
    {T::Q4_0, "q4_0", 32, 18, SR_GGML_CODEC(BlockQ4_0, q4_0)},
    {T::Q4_1, "q4_1", 32, 20, SR_GGML_CODEC(BlockQ4_1, q4_1)},
    {T::Q5_0, "q5_0", 32, 22, SR_GGML_CODEC(BlockQ5_0, q5_0)},
    {T::Q5_1, "q5_1", 32, 24, SR_GGML_CODEC(BlockQ5_1, q5_1)},
    {T::Q8_0, "q8_0", 32, 34, erase_dequant<BlockQ8_0, dequantize_row_q8_0>,
     erase_ref<BlockQ8_0, quantize_row_q8_0_ref>,
     ignore_weights<erase_ref<BlockQ8_0, quantize_row_q8_0_ref>>},
    {T::Q8_1, "q8_1", 32, 36, SR_GGML_LAYOUT_ONLY},
    {T::Q2_K, "q2_K", 256, 84, SR_GGML_CODEC(BlockQ2_K, q2_K)},
    {T::Q3_K, "q3_K", 256, 110, SR_GGML_CODEC(BlockQ3_K, q3_K)},
    {T::Q4_K, "q4_K", 256, 144, SR_GGML_CODEC(BlockQ4_K, q4_K)},
    {T::Q5_K, "q5_K", 256, 176, SR_GGML_CODEC(BlockQ5_K, q5_K)},
    {T::Q6_K, "q6_K", 256, 210, SR_GGML_CODEC(BlockQ6_K, q6_K)},
    {T::Q8_K, "q8_K", 256, 292, SR_GGML_LAYOUT_ONLY},
    {T::IQ2_XXS, "iq2_xxs", 256, 66, SR_GGML_LAYOUT_ONLY},
    {T::IQ2_XS, "iq2_xs", 256, 74, SR_GGML_LAYOUT_ONLY},
    {T::IQ3_XXS, "iq3_xxs", 256, 98, SR_GGML_LAYOUT_ONLY},
    {T::IQ1_S, "iq1_s", 256, 50, SR_GGML_LAYOUT_ONLY},
    {T::IQ4_NL, "iq4_nl", 32, 18, SR_GGML_LAYOUT_ONLY},
    {T::IQ3_S, "iq3_s", 256, 110, SR_GGML_LAYOUT_ONLY},
    {T::IQ2_S, "iq2_s", 256, 82, SR_GGML_LAYOUT_ONLY},
    {T::IQ4_XS, "iq4_xs", 256, 136, SR_GGML_LAYOUT_ONLY},
    {T::I8, "i8", 1, 1, SR_GGML_LAYOUT_ONLY},
    {T::I16, "i16", 1, 2, SR_GGML_LAYOUT_ONLY},
    {T::I32, "i32", 1, 4, SR_GGML_LAYOUT_ONLY},
    {T::I64, "i64", 1, 8, SR_GGML_LAYOUT_ONLY},
    {T::F64, "f64", 1, 8, SR_GGML_LAYOUT_ONLY},
    {T::IQ1_M, "iq1_m", 256, 56, SR_GGML_LAYOUT_ONLY},
    {T::BF16, "bf16", 1, 2, dequantize_bf16, quantize_bf16, ignore_weights<quantize_bf16>},
    {T::TQ1_0, "tq1_0", 256, 54, SR_GGML_LAYOUT_ONLY},
    {T::TQ2_0, "tq2_0", 256, 66, SR_GGML_LAYOUT_ONLY},
};

#undef SR_GGML_CODEC
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

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string supported_names() {
  std::string out;
  for (const auto& tr : kTraits) {
    if (!tr.supported()) continue;
    out += out.empty() ? "" : ", ";
    out += tr.name;
  }
  return out;
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
           ") cannot be encoded or decoded here; supported types: ", supported_names());
  return tr;
}

std::string ggml_type_name(GgmlType type) {
  const uint32_t id = uint32_t(type);
  if (!ggml_type_id_known(id)) return "unknown(" + std::to_string(id) + ")";
  return traits_by_id()[id]->name;
}

GgmlType ggml_type_from_name(const std::string& name) {
  const std::string want = lower(name);
  for (const auto& tr : kTraits) {
    if (lower(tr.name) == want) return tr.type;
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

namespace {

// Byte offsets of the fp16 scale fields in one block (d, and dmin or m), -1 = none.
struct ScaleFields {
  int first;
  int second;
};

ScaleFields scale_fields(GgmlType type) {
  switch (type) {
    case T::Q4_0: case T::Q5_0: case T::Q8_0: return {0, -1};
    case T::Q4_1: case T::Q5_1: case T::Q4_K: case T::Q5_K: return {0, 2};
    case T::Q2_K: return {80, 82};
    case T::Q3_K: return {108, -1};
    case T::Q6_K: return {208, -1};
    default: return {-1, -1};
  }
}

bool f16_finite(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return (h & 0x7c00u) != 0x7c00u;
}

bool element_finite(GgmlType type, const uint8_t* p) {
  if (type == T::F32) {
    uint32_t u;
    std::memcpy(&u, p, 4);
    return (u & 0x7f800000u) != 0x7f800000u;
  }
  if (type == T::F16) return f16_finite(p);
  uint16_t b;  // BF16
  std::memcpy(&b, p, 2);
  return (b & 0x7f80u) != 0x7f80u;
}

}  // namespace

int64_t ggml_first_nonfinite_block(GgmlType type, const void* data, uint64_t nbytes) {
  const GgmlTypeTraits& tr = ggml_codec(type);
  SR_CHECK(nbytes % tr.type_size == 0, "[ggml] ", nbytes, " bytes are not a whole number of ", tr.name,
           " blocks (", tr.type_size, " bytes each)");
  const auto* p = static_cast<const uint8_t*>(data);
  const int64_t n_blocks = int64_t(nbytes / tr.type_size);
  const bool is_float = type == T::F32 || type == T::F16 || type == T::BF16;
  const ScaleFields f = scale_fields(type);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* blk = p + b * tr.type_size;
    const bool ok = is_float ? element_finite(type, blk)
                             : (f.first < 0 || f16_finite(blk + f.first)) && (f.second < 0 || f16_finite(blk + f.second));
    if (!ok) return b;
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
