// What autoscheme shows of a search: the layers × options table (scores, bits, chosen scheme per
// allocation) as text and JSON, and a self-contained HTML report (inline SVG and CSS, no script,
// no network): one allocation chart per (target, allocator) — decoder blocks as rows, the seven
// projections as columns, each cell coloured by its bits per weight and labelled with its
// option — a DeltaLoss heat map per option, and the perplexity (and KLD) versus average-bits
// curve when evaluations of at least two averages are supplied.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/autoscheme.h"

namespace sr {

// One measured point of the quality-versus-bits curve (from `signround eval`).
struct EvalPoint {
  std::string label;        // series: "deltaloss", "head8", "MXFP4", ...
  double avg_bits = 0;
  double ppl = 0, ppl_stderr = 0;
  double kld = -1;          // < 0: not measured
};
// Reads a JSON list of {"label", "avg_bits", "ppl", "ppl_stderr"?, "kld"?} objects. Throws
// sr::Error naming the file and the entry.
std::vector<EvalPoint> read_eval_points(const std::string& path);

// "deltaloss_4.5" — the stem of an allocation's output files.
std::string allocation_stem(const Allocation& a);

// Layers × options × scores × chosen scheme × bits, plus per-option pass statistics and each
// allocation's achieved average.
nlohmann::ordered_json autoscheme_json(const Model& model, const AutoSchemeResult& r);
// The same as aligned text for stdout.
std::string autoscheme_table(const AutoSchemeResult& r);
// The HTML page (see above). `title` names the model.
std::string autoscheme_html(const std::string& title, const AutoSchemeResult& r, const std::vector<EvalPoint>& evals);

}  // namespace sr
