// Export time and memory of one format, measured apart from quantization:
//   export_bench MODEL SCHEME FORMAT [CALIB_TEXT] [THREADS] [SHARD_MB]
// Quantizes MODEL with plain RTN (optimized RTN on CALIB_TEXT, 8 x 128 tokens, when given:
// NVFP4 needs calibrated act_max) into a temporary state folder, returns freed memory to the
// system (malloc_trim), resets the resident high-water mark (/proc/self/clear_refs), then
// exports FORMAT and prints one JSON line: export seconds, RSS before the export, peak RSS
// during it, and the output size. docs/formats-safetensors.md quotes it.
#include <malloc.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/sysinfo.h"
#include "export/export_job.h"
#include "tune/pipeline.h"

int main(int argc, char** argv) {
  sr::configure_process(argv);
  namespace fs = std::filesystem;
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL SCHEME FORMAT [CALIB_TEXT] [THREADS] [SHARD_MB]\n", argv[0]);
    return 2;
  }
  const std::string calib = argc > 4 ? argv[4] : "";
  sr::set_threads(argc > 5 ? std::atoi(argv[5]) : 2);
  const uint64_t shard = argc > 6 ? uint64_t(std::atoll(argv[6])) << 20 : 0;
  try {
    auto model = sr::Model::open(argv[1]);
    sr::LayerPlan plan = sr::make_layer_plan(*model, {sr::parse_scheme(argv[2]), "", false});
    sr::check_export_plan(argv[3], plan, !calib.empty());
    const fs::path tmp = fs::temp_directory_path() / ("export_bench_" + std::to_string(getpid()));
    sr::QuantizeOptions o;
    o.progress = false;
    o.tune.iters = 0;
    o.tune.method = calib.empty() ? sr::Method::Rtn : sr::Method::OptRtn;
    o.calib.dataset = calib;
    o.calib.nsamples = 8;
    o.calib.seqlen = 128;
    const std::string state = (tmp / "state").string();
    nlohmann::json record = sr::run_quantization(*model, plan, o, state, {{"iters", 0}});
    sr::ExportJob job;
    job.model = model.get();
    job.plan = &plan;
    job.block_layers = [&](int64_t b) { return sr::load_saved_block(state, b); };
    job.record = record;
    job.max_shard_bytes = shard;
    malloc_trim(0);
    sr::reset_peak_rss();
    const int64_t before = sr::current_rss_bytes();
    const double t0 = sr::now_seconds();
    sr::export_model(argv[3], job, (tmp / "out").string());
    const double secs = sr::now_seconds() - t0;
    const int64_t peak = sr::peak_rss_bytes();
    uint64_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(tmp / "out"))
      if (e.is_regular_file()) bytes += e.file_size();
    fs::remove_all(tmp);
    const double MiB = 1 << 20;
    nlohmann::json j = {{"model", argv[1]}, {"scheme", argv[2]}, {"format", argv[3]}, {"export_seconds", secs},
                        {"rss_before_mib", before / MiB}, {"peak_rss_mib", peak / MiB},
                        {"peak_minus_before_mib", (peak - before) / MiB}, {"output_mib", bytes / MiB}};
    std::printf("%s\n", j.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "export_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
