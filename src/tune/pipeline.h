// The quantization run, block by block (spec §2.2-2.3):
//   1. calibration samples -> embeddings = block 0's inputs, cached once (FP path
//      X_fp and quantized path X_q, identical at block 0);
//   2. per unit of nblocks blocks: the FP reference pass turns X_fp into Y_ref in
//      place (collecting the imatrix and act_max on the way), the unit is quantized
//      to map X_q onto Y_ref, then X_q is pushed through the quantized unit;
//   3. with --quant_lm_head, lm_head is quantized last on the final hidden states
//      (spec §2.7);
//   4. each unit's result is saved in <output_dir>.partial/ so --resume continues
//      after the last finished unit (replaying the finished units' forwards to
//      rebuild the caches, bit-identically);
//   5. export/ then writes the requested formats from the saved state (cli/ drives it).
// Plain RTN needs no data and skips the caches.
// Resident memory: the two caches [N, T, D] (or, spilled to disk, the mini-batch in use) plus
// one unit's weights and graph; the graph is bounded by recomputation inside the blocks when its
// estimate exceeds the budget (TuneOptions::checkpoint Auto: graph_budget, which 0 here makes
// cache_memory_budget(0), a quarter of physical memory).
// Progress lines (stderr, opt.progress): one per unit, and during a unit's tuning one per 30 s,
// with an ETA for the blocks from the measured mean unit time, or before the first unit ends from
// this unit's measured work so far plus its iterations left at their mean time.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/dist.h"
#include "tokenizer/calibration.h"
#include "quant/layer_plan.h"
#include "tune/imatrix.h"
#include "tune/unit_quantizer.h"

namespace sr {

struct QuantizeOptions {
  TuneOptions tune;
  CalibOptions calib;
  at::Tensor calib_tokens;                // [N, T] int64: use these instead of calib.dataset
  int64_t nblocks = 1;
  bool enable_quanted_input = true;       // tune on quantized-path inputs (§2.3)
  bool cache_bf16 = false;                // store the activation caches in bf16
  // The two activation caches stay in memory while they take at most this many bytes, and spill
  // into files otherwise (tune/act_cache.h), read and written a mini-batch at a time. 0: the
  // default, cache_memory_budget(0).
  int64_t cache_budget = 0;
  // Folder of the spilled caches' files (unlinked at once: nothing stays there); "" : the folder
  // holding state_dir. Checked (exists, writable) whenever given.
  std::string cache_dir;
  bool resume = false;
  bool progress = true;
  int64_t stop_after_units = -1;          // testing aid: throw after this many units (simulates a kill)
  // Given (an imatrix file): replaces the Σx² the FP pass collects wherever it is used (opt-RTN,
  // the V2 search, the GGUF encoders, lm_head's); a layer it lacks gets none. Optimized RTN with
  // one needs no calibration data: without a dataset the run skips calibration.
  const Importances* imatrix = nullptr;
  // Data-parallel runs (common/dist.h): the calibration samples are cut into data_shards
  // contiguous shards of equal size (data_shards must divide them and the batch). With comm,
  // this process is one of data_shards == comm->world() ranks: it caches, forwards and tunes on
  // shard comm->rank() only, sums over the ranks through comm, and only rank 0 writes state_dir.
  // Without comm, one process holds every shard and computes what data_shards ranks would,
  // bit for bit for 2 (the reference of a multi-rank run); data_shards 1 is the plain run.
  int64_t data_shards = 1;
  const Comm* comm = nullptr;
  // When set: filled with what the FP pass collected, every quantized layer's and lm_head's
  // (untied models), whether or not `imatrix` replaced it. Needs calibration data.
  Importances* collected_imatrix = nullptr;
};

// Quantizes every unit of `model` per `plan`, saving each unit's layers under
// `state_dir` (block_NNNNN.safetensors, written atomically). With opt.resume,
// units already saved there are reused (their settings must match: `fingerprint`
// is compared with the state's run.json). Returns the run record: settings,
// per-unit stats, times, peak memory. Every rank of a data-parallel run calls it with the same
// arguments but comm; each returns the same record. Throws sr::Error when the caches spill and the
// cache folder is missing, not writable or too small.
nlohmann::json run_quantization(const Model& model, const LayerPlan& plan, const QuantizeOptions& opt,
                                const std::string& state_dir, const nlohmann::json& fingerprint);

// Whether `state_dir` holds a run (its run.json) that run_quantization would continue only
// with opt.resume.
bool has_unfinished_run(const std::string& state_dir);

// The quantized layers of block `b` saved in `state_dir` (empty if none).
std::vector<QuantizedLayer> load_saved_block(const std::string& state_dir, int64_t b);
// lm_head's, when quant_lm_head quantized it (empty otherwise).
std::vector<QuantizedLayer> load_saved_head(const std::string& state_dir);

// Importance of the quantizable layers outside the blocks, saved by run_quantization when it
// had calibration data: {"lm_head": [D]} = mean over the calibration tokens of x² of lm_head's
// input (the final-normed hidden state of the FP model), llama.cpp's imatrix semantics (its
// llama-imatrix --process-output). Absent for tied embeddings (llama.cpp collects none then)
// and for data-free runs: the map is empty.
std::map<std::string, at::Tensor> load_saved_head_imatrix(const std::string& state_dir);

// Bytes the two activation caches will take.
int64_t cache_bytes(int64_t nsamples, int64_t seqlen, int64_t hidden, bool bf16);
// The memory the caches may take: `given` when positive, else a quarter of physical memory,
// and never more than 80 % of the memory available now.
int64_t cache_memory_budget(int64_t given);

}  // namespace sr
