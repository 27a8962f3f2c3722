// Registry of ggml tensor types: the numeric IDs GGUF files store, and one traits row per
// type that ggml defines: block geometry, code bits, the row codecs we implement, the scale
// check, and the frozen-parameter hooks of the block types (ggml_frozen.h).
//
// IDs are frozen: they are ggml's `enum ggml_type` values (llama.cpp c392e50,
// ggml/include/ggml.h) and are written into every GGUF tensor info. Never renumber;
// retired IDs stay listed as comments so they are not reused. A test asserts every value.
//
// Vocabulary used by all ggml_* headers:
//   n      elements in one tensor row (ggml's ne[0]); a multiple of block_size.
//   block  block_size consecutive elements of a row stored in type_size bytes.
//   row    ggml_row_bytes(type, n) bytes: n / block_size blocks back to back.
//
// Thread-safety: everything here is immutable after static initialisation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sr {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  // 4 (Q4_2) and 5 (Q4_3): retired by ggml, never reuse.
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  // 31..33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8): removed from GGUF files by ggml, never reuse.
  TQ1_0 = 34,
  TQ2_0 = 35,
  // 36..38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8): removed from GGUF files, never reuse.
};

// One past the largest ID ggml defines (GGML_TYPE_COUNT at llama.cpp c392e50).
constexpr uint32_t kGgmlTypeIdEnd = 39;

// Decodes n elements (one or more whole blocks) into fp32, exactly as ggml's
// dequantize_row_* does (same float operations, so the same bits).
using GgmlDequantizeRow = void (*)(const void* blocks, float* out, int64_t n);
// Encodes n fp32 elements; bit-identical to ggml's quantize_row_*_ref, which is what
// llama-quantize runs without an importance matrix.
using GgmlQuantizeRowRef = void (*)(const float* x, void* blocks, int64_t n);
// Encodes ONE tensor row of n elements with per-column importance `weights` [n]
// (an imatrix row); bit-identical to ggml's quantize_<type>(..., quant_weights != NULL).
// The row boundary matters: some types compute statistics over the whole row.
// REQUIRES: weights != nullptr.
using GgmlQuantizeRowWeighted = void (*)(const float* x, void* blocks, int64_t n,
                                         const float* weights);
// True if the stored scales of ONE block (type_size bytes at `block`, any alignment) are
// finite: the fp16 d / dmin / m fields of a quantized type, the element of a float type.
using GgmlBlockFinite = bool (*)(const uint8_t* block);

// The frozen-parameter hooks (ggml_frozen.h) of a block type whose sub-blocks of `group`
// elements decode as  w = scale_g * c - min_g  (asym, unsigned code c in [0, 2^bits - 1])
// or  w = scale_g * (c - 2^(bits-1))  (sym). Blocks are byte buffers of type_size bytes
// (any alignment); codes are the block_size unsigned codes c in element order.
struct GgmlBlockParams {
  int group = 0;       // elements per sub-block sharing (scale, min); 0: the type has no hooks
  bool asym = false;
  // scheme.h layer_bits (auto-round's §4.3 cost of a k-quant): bits of one sub-block's
  // scale code (the super-block holds block_size / group of them); 0 for the legacy types,
  // which auto-round costs as int G = 32.
  int sub_scale_bits = 0;
  void (*unpack)(const uint8_t* block, uint8_t* codes) = nullptr;
  // Writes only the code bits; the headers (d, dmin, scale codes) are left as they are.
  void (*pack)(const uint8_t* codes, uint8_t* block) = nullptr;
  // Effective parameters of the block's sub-blocks, [block_size / group] each, computed
  // with the same fp32 operations as decoding (scale = d*sc, min = dmin*m, or -m, or 0).
  void (*decode)(const uint8_t* block, float* scale, float* min) = nullptr;
  // Legacy types only (null for the k-quants): llama.cpp's ref encoder rounds against the
  // fp32 block scale d and minimum (0 for sym) of one 32-element block xb before they are
  // stored as fp16; ref_code is that rule for one element x with offset v (the unsigned
  // code, ggml_legacy.h LegacyCodec).
  void (*ref_params)(const float* xb, float* d, float* min) = nullptr;
  int (*ref_code)(float x, float v, float d, float min) = nullptr;
};

// The frozen-rounding hooks (ggml_frozen.h) of a type whose codes index a table of levels or a
// lattice grid: IQ4_NL / IQ4_XS (ggml_iquants_nl.h) and IQ3_XXS … IQ1_M (ggml_iquants_grid.h).
// A row's stored blocks (ggml_row_bytes(type, n) bytes, any alignment) fix every sub-block's
// scale; the rounding of x + v re-chooses only the codes, and w_hat = scale_g * level.
struct GgmlTableHooks {
  int group = 0;     // elements per sub-block sharing one scale; 0: the type has no table hooks
  int code_min = 0;  // GgmlRowParams' code range: IQ4 its table indices 0..15, the grids their
  int code_max = 0;  // signed levels (IQ1 -1..1, before its delta)
  // Effective scale of each sub-block, with decoding's fp32 operations. scale [n / group].
  void (*row_scales)(const void* blocks, int64_t n, float* scale) = nullptr;
  // The rounding's per-element weights w [n] from x [n] and importance [n] (null: none, the
  // encoder's own fallback). Null hook: the type's rounding uses no weights (IQ4).
  void (*row_weights)(const float* x, const float* importance, int64_t n, float* w) = nullptr;
  // The frozen rounding of x [n] with offsets v (null = 0) and weights w (row_weights', or
  // null) against `blocks`: the re-coded row to `out`, its decoding to w_hat and the
  // straight-through d w_hat / d v to dv. Each output may be null; dv only with w_hat.
  // Throws sr::Error if an x or v that sets a code is not finite.
  void (*frozen_row)(const void* blocks, const float* x, const float* w, const float* v, int64_t n, void* out,
                     float* w_hat, float* dv) = nullptr;
  // Signed levels q [n] of stored blocks (w_hat = scale_g * q). Throws where the levels are not
  // integers (IQ1_S / IQ1_M: g + delta).
  void (*unpack_values)(const void* blocks, int64_t n, int16_t* q) = nullptr;
};

// One row per ggml type, as ggml's type_traits: adding a type means adding a row in
// ggml_types.cpp (and its codec functions); the registry tests then run on it
// (ggml_types_test EveryRowIsConsistent / EveryCodec, ggml_frozen_test Frozen).
struct GgmlTypeTraits {
  GgmlType type;
  const char* name;        // ggml's spelling ("q4_K", "bf16"); lookups ignore case
  int64_t block_size;      // elements per block
  uint32_t type_size;      // bytes per block
  // Code bits per element: the nominal width (q4_K 4, q8_0 8, f16 16). The headers add
  // bits_per_weight() - bits (q4_K 4.5 - 4). A GGUF scheme's `bits` (scheme.h).
  int bits;
  // False where ggml has no imatrix path, so quantize_row_weighted ignores the weights and
  // is quantize_row_ref (f32, f16, bf16, q8_0); ggml_search_row_weighted is then the ref
  // search, legacy ref scales included.
  bool uses_importance = false;
  // Null for types whose layout we know (so files holding them can be listed and
  // copied) but whose codec we do not implement.
  GgmlDequantizeRow dequantize_row = nullptr;
  GgmlQuantizeRowRef quantize_row_ref = nullptr;
  GgmlQuantizeRowWeighted quantize_row_weighted = nullptr;
  GgmlBlockFinite block_finite = nullptr;
  GgmlBlockParams params;  // params.group == 0: no frozen-parameter hooks
  // True where llama.cpp refuses the type without an importance matrix (IQ2_XXS, IQ2_XS,
  // IQ2_S, IQ1_S, IQ1_M: "Missing importance matrix ... in a very low-bit quantization"):
  // quantize_row_ref then throws sr::Error saying so.
  bool requires_importance = false;
  GgmlTableHooks table = {};  // table.group == 0: not a table / grid type

  bool supported() const { return dequantize_row != nullptr; }
  bool has_block_params() const { return params.group != 0; }
  bool has_table() const { return table.group != 0; }
  // Storage cost: type_size * 8 / block_size (q4_K 4.5, q2_K 2.625, q8_0 8.5).
  double bits_per_weight() const { return double(type_size) * 8.0 / double(block_size); }
};

// True if `id` is a type ggml defines (not retired, below kGgmlTypeIdEnd).
bool ggml_type_id_known(uint32_t id);

// Traits of any known type. Throws sr::Error for IDs ggml does not define.
const GgmlTypeTraits& ggml_type_traits(GgmlType type);

// Traits of a type we can encode and decode. Throws sr::Error naming the type and
// listing the supported ones otherwise.
const GgmlTypeTraits& ggml_codec(GgmlType type);

// ggml's name ("q4_K"); "unknown(N)" for IDs ggml does not define.
std::string ggml_type_name(GgmlType type);

// Case-insensitive lookup of a ggml type name ("Q4_K", "q8_0", "BF16").
// Throws sr::Error naming the input and listing the known names.
GgmlType ggml_type_from_name(const std::string& name);

// Every type with a codec, in ID order.
std::vector<GgmlType> ggml_supported_types();
// Their names, comma-separated ("f32, f16, q4_0, ..."), for error messages.
std::string ggml_supported_type_names();

// Every type with frozen-parameter hooks (GgmlTypeTraits::has_block_params), in ID order:
// the GGUF quantization schemes (scheme.h) and the types ggml_frozen.h handles.
std::vector<GgmlType> ggml_block_param_types();

// Bytes of one row of n elements. Throws sr::Error if n < 0, if n is not a multiple
// of the type's block size, or if the type is unknown.
uint64_t ggml_row_bytes(GgmlType type, int64_t n);

// Index of the first block whose stored scales are not finite (fp16 d, dmin or m of a
// quantized type; for F32/F16/BF16 every element is a "block"), or -1 if all are.
// The check ggml_validate_row_data makes before llama.cpp uses a tensor.
// REQUIRES: ggml_codec(type) exists; nbytes a multiple of the type size (throws otherwise).
int64_t ggml_first_nonfinite_block(GgmlType type, const void* data, uint64_t nbytes);

}  // namespace sr
