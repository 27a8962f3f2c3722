// llama.cpp's importance-matrix files (llama-imatrix writes them, llama-quantize --imatrix
// reads them), in both of their formats:
//
//   legacy ".dat" (llama.cpp until mid 2025), little-endian:
//     int32 n_entries (>= 1)
//     n_entries x { int32 name_len, name bytes, int32 ncall, int32 nval, float32 values[nval] }
//     optional: int32 last_call (chunks), int32 dataset_len, dataset bytes
//   values[i] is mean(x²) x ncall; llama-quantize divides by ncall again (ncall <= 0: as is).
//   A stacked expert tensor has nval = columns x experts and one ncall.
//
//   GGUF (llama.cpp since mid 2025): general.type = "imatrix", imatrix.datasets (string array),
//   imatrix.chunk_count and imatrix.chunk_size (u32); per weight W two F32 tensors
//     W.in_sum2  ggml ne [columns, n_mat]: Σx² per input column, one row per matrix (expert)
//     W.counts   ggml ne [1, n_mat]:       the tokens each matrix saw
//   (and, from some versions, W.in_sum, Σx, which importance does not use). llama-quantize
//   takes in_sum2 / count per matrix, and 1 for a matrix that saw no token.
//
// Names are GGUF weight names ("blk.0.attn_q.weight"); mapping them to a model is the
// caller's (tune/imatrix.h). Files are untrusted: every size is checked against the file,
// and every failure throws sr::Error naming the file and the entry.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sr {

struct ImatrixEntry {
  // GGUF: Σx² per input column, matrix after matrix. Legacy: the stored mean x ncall.
  std::vector<float> sums;
  // GGUF: tokens per matrix (whole numbers). Legacy: {ncall}.
  std::vector<double> counts;
};

struct ImatrixFile {
  bool legacy = false;                          // which meaning `entries` have (see ImatrixEntry)
  std::map<std::string, ImatrixEntry> entries;  // by GGUF weight name
  std::vector<std::string> datasets;            // the calibration texts it was collected on
  uint32_t chunk_count = 0;                     // chunks (legacy: last_call)
  uint32_t chunk_size = 0;                      // tokens per chunk; 0 when unknown (legacy)
};

// Reads either format (GGUF by its magic, else legacy). Throws sr::Error naming `path` on a
// truncated or corrupt file, non-finite or negative values, duplicate names, a tensor of an
// imatrix GGUF without its partner or of another type than F32, or a GGUF model given
// instead of an imatrix.
ImatrixFile read_imatrix_file(const std::string& path);

// Writes `f` atomically (common/atomic_file.h) in the legacy format when `legacy`, else as
// GGUF. A file read as GGUF written as legacy gets llama-imatrix's conversion: ncall =
// ceil(max count / chunk_size) (chunk_size 0: max count), values = sums / count x ncall, and
// 1 x ncall for a matrix without tokens; the other direction keeps {ncall} as the count.
void write_imatrix_file(const std::string& path, const ImatrixFile& f, bool legacy);

// The importance llama-quantize takes from an entry, in its float arithmetic (see above).
std::vector<float> imatrix_mean(const ImatrixEntry& e, bool legacy);

}  // namespace sr
