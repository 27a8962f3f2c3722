// signround autoscheme: DeltaLoss scores and per-layer scheme allocation under an average-bits
// budget (spec §4), without quantizing. Writes, in --output_dir:
//   layer_config_<allocator>_<bits>.json   per target and allocator, readable by --layer_config
//   autoscheme.json                         layers × options × scores × chosen scheme × bits
//   report.html                             allocation charts, scores, PPL/KLD-vs-bits curve
// and prints the table on stdout (--json: autoscheme.json's content).
#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "alloc/report.h"
#include "alloc/score_cache.h"
#include "cli/autoscheme_flags.h"
#include "cli/dist_flags.h"
#include "cli/flag_values.h"
#include "cli/commands.h"
#include "common/amp.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/strings.h"
#include "common/sysinfo.h"
#include "io/imatrix_file.h"

namespace sr::cli {
namespace fs = std::filesystem;

std::vector<FlagSpec> autoscheme_common_flags() {
  return {
      {"avg-bits", true, "target average bits per weight (spec 4.3 costs); autoscheme takes a comma list", ""},
      {"options", true, "comma list of candidate schemes, e.g. MXFP4,MXFP8 or W2A16G64,W4A16", ""},
      {"schemes", true, "auto-round's newer spelling of --options (with --bits for --avg_bits)", ""},
      {"allocator", true, "deltaloss | uniform | head8 | tail8 | random, or a comma list (quantize: needs "
       "--measure_kld and keeps the allocation with the lowest measured KLD)", "deltaloss"},
      {"measure-kld", false, "measure each allocation's KL divergence to the unquantized model on the calibration "
       "tokens (RTN; one forward per allocation) and report the best allocator per target", ""},
      {"refine", true, "rounds of measured refinement of the DeltaLoss allocation: local search on the KL divergence "
                       "measured on the calibration tokens (RTN; about layers x options forwards a round)", "0"},
      {"measure-encoder", true, "weight encoder of --measure_kld and --refine: rtn | opt_rtn (the imatrix search "
                                "quantize --iters 0 uses)", "rtn"},
      {"ignore-scale-zp-bits", false, "count only the weight bits (auto-round's ignore_scale_zp_bits)", ""},
      {"bit-cost", true, "spec (auto-round's per-layer estimate, spec 4.3) | file (the bits the file stores: GGUF "
                         "block sizes) | auto (file when an option is a GGUF type)", "spec"},
      {"fuse-groups", true, "auto | on | off: q/k/v and gate/up share one option (auto: on for NVFP4)", "auto"},
      {"score-cache", true, "folder of cached DeltaLoss scores, or 'none'", "~/.cache/signround/deltaloss"},
      {"deltaloss-target", true, "auto (fp when an option is a GGUF type, else labels) | labels (spec: next-token "
                                 "loss) | fp (KL to the unquantized model)", "auto"},
      {"deltaloss-weight-term", false, "add the weight term for every option (spec: only with a weight-only option)", ""},
  };
}

namespace {

std::vector<double> parse_avg_bits(const Args& a) {
  std::vector<double> out;
  const std::string flag = avg_bits_flag(a);
  for (const std::string& v : a.list(flag.empty() ? "avg-bits" : flag)) {
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(v.c_str(), &end);
    SR_CHECK(!v.empty() && end && *end == '\0' && errno == 0 && x > 0, "--", flag == "bits" ? "bits" : "avg_bits",
             " expects positive numbers, got '", v, "'");
    out.push_back(x);
  }
  SR_CHECK(!out.empty(), "--avg_bits is required (e.g. --avg_bits 4.5 or 4.5,5,6)");
  return out;
}

std::string score_cache_dir(const Args& a) {
  const std::string v = a.str("score-cache", "");
  if (v == "none") return "";
  return v.empty() ? default_score_cache_dir() : v;
}

std::vector<FlagSpec> autoscheme_flags() {
  auto f = autoscheme_common_flags();
  f.insert(f.end(), {
      {"model", true, "model: HF folder, .gguf or llama2.c .bin", ""},
      {"bits", true, "auto-round's newer spelling of --avg_bits", ""},
      {"output-dir", true, "where the layer configs, autoscheme.json and report.html go", ""},
      {"dataset", true, "calibration text for DeltaLoss (plain text or JSONL)", ""},
      {"nsamples", true, "calibration samples", "16"},
      {"seqlen", true, "tokens per sample", "256"},
      {"batch-size", true, "samples per forward/backward", "8"},
      {"seed", true, "sample choice and the random allocator's order", "42"},
      {"disable-amp", false, "DeltaLoss in fp32 (default: bf16 matmuls where the CPU has native bf16)", ""},
      {"enable-amp", false, "DeltaLoss with bf16 matmuls even where the CPU emulates bf16 (slower there)", ""},
      {"layer-config", true, "JSON of layers whose scheme is fixed (their bits count in the budget)", ""},
      {"imatrix", true, "llama.cpp imatrix file (GGUF or legacy .dat) for the opt-RTN measurements "
                        "(--measure_encoder opt_rtn) instead of the search's own", ""},
      {"eval-results", true, "JSON list of {label, avg_bits, ppl, ppl_stderr, kld} for the report's curve", ""},
      {"json", false, "print autoscheme.json on stdout", ""},
      {"quiet", false, "no progress on stderr", ""},
  });
  auto dist = dist_flags();  // DeltaLoss over ranks: each scores a share of the batches
  f.insert(f.end(), dist.begin(), dist.end());
  return f;
}

}  // namespace

bool amp_from_flags(const Args& a) {
  SR_CHECK(!(a.flag("enable-amp") && a.flag("disable-amp")), "--enable_amp and --disable_amp exclude each other");
  return a.flag("enable-amp") || (!a.flag("disable-amp") && bf16_compute_supported(at::Device(at::kCPU)));
}

std::string avg_bits_flag(const Args& a) {
  SR_CHECK(!(a.has("options") && a.has("schemes")), "--options and --schemes are the same flag; give one");
  if (a.has("avg-bits")) return "avg-bits";
  return a.has("bits") && (a.has("options") || a.has("schemes")) ? "bits" : "";
}

AutoSchemeOptions autoscheme_options_from_flags(const Args& a, const std::string& prefix,
                                                const std::vector<double>& file_targets) {
  AutoSchemeOptions o;
  o.avg_bits = file_targets.empty() ? parse_avg_bits(a) : file_targets;
  const std::string options = a.has("schemes") ? a.str("schemes") : a.required("options");
  o.options = parse_alloc_options(options);
  o.allocators.clear();
  for (const std::string& s : a.list("allocator")) o.allocators.push_back(parse_allocator(s));
  if (o.allocators.empty()) o.allocators = {AllocatorKind::DeltaLoss};
  o.ignore_scale_zp_bits = a.flag("ignore-scale-zp-bits");
  o.bit_cost = file_targets.empty() ? parse_bit_cost(a.str("bit-cost", "spec")) : BitCost::File;
  o.fuse = parse_fuse_policy(a.str("fuse-groups", "auto"));
  // auto: the KL target for GGUF options, where it beat the spec's label loss against llama.cpp's
  // mixes at 4 of 5 sizes (the label loss at 2; docs/results-mixed-precision.md).
  const std::string target = a.str("deltaloss-target", "auto");
  SR_CHECK(target == "auto" || target == "labels" || target == "fp",
           "--deltaloss_target must be auto, labels or fp, got '", target, "'");
  const bool gguf_options = ascii_lower(options).find("gguf:") != std::string::npos;
  o.target = target == "fp" || (target == "auto" && gguf_options) ? DeltaLossTarget::FullPrecision
                                                                   : DeltaLossTarget::Labels;
  o.weight_term = a.flag("deltaloss-weight-term");
  o.amp = amp_from_flags(a);
  o.calib.dataset = a.str("dataset");
  o.calib.nsamples = a.integer(prefix + "nsamples", 16);
  o.calib.seqlen = a.integer(prefix + "seqlen", 256);
  o.batch_size = a.integer(prefix + "batch-size", 8);
  SR_CHECK(o.calib.nsamples >= 1, "--", prefix, "nsamples must be >= 1, got ", o.calib.nsamples);
  SR_CHECK(o.calib.seqlen >= 2, "--", prefix, "seqlen must be >= 2, got ", o.calib.seqlen);
  SR_CHECK(o.batch_size >= 1, "--", prefix, "batch_size must be >= 1, got ", o.batch_size);
  o.seed = uint64_t(a.integer("seed", 42));
  o.calib.seed = o.seed;
  o.layer_config = a.str("layer-config");
  o.score_cache_dir = score_cache_dir(a);
  o.measure_kld = a.flag("measure-kld");
  o.refine_rounds = int(a.integer("refine", 0));
  o.measure_encoder = parse_probe_encoder(a.str("measure-encoder", "rtn"));
  SR_CHECK(o.refine_rounds >= 0 && o.refine_rounds <= 100, "--refine must be between 0 and 100, got ",
           o.refine_rounds);
  if (o.needs_data()) {
    SR_CHECK(!o.calib.dataset.empty(), "--dataset is required for DeltaLoss scoring (e.g. ../shared/data/calib_stories.txt)");
    SR_CHECK(fs::exists(o.calib.dataset), "--dataset ", o.calib.dataset, " does not exist");
  }
  const bool file_bits = o.bit_cost == BitCost::File ||
                         (o.bit_cost == BitCost::Auto && std::any_of(o.options.begin(), o.options.end(),
                                                                      [](const AllocOption& x) { return x.scheme.is_gguf(); }));
  SR_CHECK(!(file_bits && o.ignore_scale_zp_bits), "--ignore_scale_zp_bits cannot be combined with file bit costs (",
           o.bit_cost == BitCost::File ? "--bit_cost file" : "--bit_cost auto with a GGUF option",
           "): a file stores its scales; pass --bit_cost spec");
  o.progress = !a.flag("quiet");
  return o;
}

std::map<std::string, QuantScheme> autoscheme_layer_schemes(const Model& model, const Args& a, nlohmann::json& record,
                                                             double file_target, const Importances* imatrix,
                                                             const Comm* comm) {
  AutoSchemeOptions o = autoscheme_options_from_flags(a, "autoscheme-", file_target > 0 ? std::vector<double>{file_target}
                                                                                         : std::vector<double>{});
  SR_CHECK(o.avg_bits.size() == 1, "quantize takes one --avg_bits; use signround autoscheme to compare several");
  SR_CHECK(o.allocators.size() == 1 || o.measure_kld, "quantize takes one --allocator, or several with --measure_kld "
           "(the allocation with the lowest measured KLD is quantized)");
  if (o.measure_kld && o.allocators.size() > 1 && a.integer("iters", 200) > 0 && o.progress)
    std::fprintf(stderr, "note: --measure_kld ranks allocations by their RTN damage; with tuning (--iters > 0) that "
                 "picked a worse allocation than DeltaLoss on the demo model (docs/results-mixed-precision.md)\n");
  if (o.refine_rounds > 0 && a.integer("iters", 200) > 0 && o.progress)
    std::fprintf(stderr, "note: --refine measures untuned (%s) damage; with tuning (--iters > 0) it helped at one budget "
                 "of four on the demo model and hurt at two (docs/results-mixed-precision.md)\n",
                 o.measure_encoder == ProbeEncoder::OptRtn ? "opt-RTN" : "RTN");
  GivenImportances given;
  if (imatrix) {
    for (const auto& [name, l] : *imatrix) given[name] = {l.sum_sq, l.tokens};
    o.imatrix = &given;
  }
  o.comm = comm;
  o.progress = o.progress && (!comm || comm->rank() == 0);
  AutoSchemeResult r = run_autoscheme(model, o);
  const Allocation& al = r.allocations[r.best.empty() ? 0 : r.best.front()];
  record = layer_config_json(r.plan, r.problem, al)["autoscheme"];
  record["scoring_seconds"] = r.seconds;
  if (std::isfinite(al.measured_kld)) {
    record["measured_kld"] = al.measured_kld;
    nlohmann::json all = nlohmann::json::object();
    for (const Allocation& x : r.allocations) all[to_string(x.allocator)] = x.measured_kld;
    record["measured_kld_by_allocator"] = all;
  }
  if (std::isfinite(al.unrefined_kld)) {
    record["unrefined_kld"] = al.unrefined_kld;
    record["refine_evaluations"] = al.refine_evaluations;
  }
  if (o.progress)
    std::fprintf(stderr, "autoscheme: %s -> %.4f bits/weight (target %g)\n", allocation_stem(al).c_str(),
                 al.avg_bits, al.target_avg_bits);
  return allocation_layer_schemes(r.plan, r.problem, al);
}

int cmd_autoscheme(int argc, char** argv) {
  Args a("autoscheme", autoscheme_flags(), argc, argv);
  if (a.help("DeltaLoss scores and the per-layer scheme allocation for an average-bits budget (no quantization)"))
    return 0;
  apply_common(a);
  const std::string out_dir = a.required("output-dir");
  SR_CHECK(!(a.has("avg-bits") && a.has("bits")), "--avg_bits and --bits are the same flag here; give one");
  AutoSchemeOptions o = autoscheme_options_from_flags(a, "");
  std::vector<EvalPoint> evals;
  if (a.has("eval-results")) {
    const std::string path = a.required("eval-results");
    SR_CHECK(fs::exists(path), "--eval_results ", path, " does not exist");
    evals = read_eval_points(path);
  }
  const std::unique_ptr<Comm> comm = connect_ranks(a);
  const bool rank0 = !comm || comm->rank() == 0;  // the only writer
  o.comm = comm.get();
  o.progress = o.progress && rank0;
  auto model = open_model(a, a.required("model"), o.needs_data());
  map_large_blocks(sample_activation_bytes(model->config().n_heads, model->config().intermediate, o.calib.seqlen));
  // --imatrix: read and mapped onto the model before any scoring, as quantize --avg_bits does, so
  // a bad file stops the run first. Only the opt-RTN measurements use one: elsewhere it is refused.
  GivenImportances given;
  AutoSchemeOptions opt = o;
  if (a.has("imatrix")) {
    SR_CHECK(o.measure_encoder == ProbeEncoder::OptRtn && (o.measure_kld || o.refine_rounds > 0),
             "--imatrix is used by the opt-RTN measurements only: add --measure_kld (or --refine N) and "
             "--measure_encoder opt_rtn");
    const std::string path = a.str("imatrix");
    const Importances im = importances_from_file(read_imatrix_file(path), path, model->config(), model->block_descs());
    for (const auto& [name, l] : im) given[name] = {l.sum_sq, l.tokens};
    opt.imatrix = &given;
  }
  AutoSchemeResult r = run_autoscheme(*model, opt);
  if (!rank0) return 0;  // every rank holds the same result; rank 0 writes it
  fs::create_directories(out_dir);
  auto write = [&](const std::string& name, const std::string& text) {
    write_file_atomically((fs::path(out_dir) / name).string(), text, "[autoscheme]");
  };
  for (const Allocation& al : r.allocations)
    write("layer_config_" + allocation_stem(al) + ".json", layer_config_json(r.plan, r.problem, al).dump(2) + "\n");
  nlohmann::ordered_json j = autoscheme_json(*model, r);
  j["peak_rss_bytes"] = peak_rss_bytes();
  write("autoscheme.json", j.dump(2) + "\n");
  write("report.html", autoscheme_html(model->path(), r, evals));
  if (a.flag("json")) return print_json(j);
  std::cout << autoscheme_table(r);
  std::printf("\noutput     %s (layer_config_*.json, autoscheme.json, report.html)\n", out_dir.c_str());
  std::printf("time       %s, peak memory %s\n", format_duration(r.seconds).c_str(),
              format_bytes(double(peak_rss_bytes())).c_str());
  return 0;
}

}  // namespace sr::cli
