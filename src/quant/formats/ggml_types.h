// Registry of ggml tensor types: the numeric IDs GGUF files store, the block geometry
// of every type ggml defines, and the row codecs we implement.
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

struct GgmlTypeTraits {
  GgmlType type;
  const char* name;        // ggml's spelling ("q4_K", "bf16"); lookups ignore case
  int64_t block_size;      // elements per block
  uint32_t type_size;      // bytes per block
  // Null for types whose layout we know (so files holding them can be listed and
  // copied) but whose codec we do not implement.
  GgmlDequantizeRow dequantize_row;
  GgmlQuantizeRowRef quantize_row_ref;
  GgmlQuantizeRowWeighted quantize_row_weighted;

  bool supported() const { return dequantize_row != nullptr; }
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

// Bytes of one row of n elements. Throws sr::Error if n < 0, if n is not a multiple
// of the type's block size, or if the type is unknown.
uint64_t ggml_row_bytes(GgmlType type, int64_t n);

// Index of the first block whose stored scales are not finite (fp16 d, dmin or m of a
// quantized type; for F32/F16/BF16 every element is a "block"), or -1 if all are.
// The check ggml_validate_row_data makes before llama.cpp uses a tensor.
// REQUIRES: ggml_codec(type) exists; nbytes a multiple of the type size (throws otherwise).
int64_t ggml_first_nonfinite_block(GgmlType type, const void* data, uint64_t nbytes);

}  // namespace sr
