#include "alloc/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/limits.h"

namespace sr {

std::vector<EvalPoint> read_eval_points(const std::string& path) {
  const nlohmann::json j =
      parse_json_text(read_input_file(path, limits::kMaxJsonFileBytes, "[eval results]"), "[eval results] " + path);
  SR_CHECK(j.is_array(), "[eval results] ", path, ": expected a list of {label, avg_bits, ppl} objects");
  std::vector<EvalPoint> out;
  for (size_t i = 0; i < j.size(); ++i) {
    try {
      const auto& e = j[i];
      out.push_back({e.at("label").get<std::string>(), e.at("avg_bits").get<double>(), e.at("ppl").get<double>(),
                     e.value("ppl_stderr", 0.0), e.value("kld", -1.0)});
    } catch (const nlohmann::json::exception& ex) {
      fail("[eval results] ", path, ": entry ", i, ": ", ex.what());
    }
  }
  return out;
}

std::string allocation_stem(const Allocation& a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s_%g", to_string(a.allocator), a.target_avg_bits);
  return buf;
}

namespace {

double bits_per_weight(const AllocProblem& p, size_t l, size_t k) {
  return double(p.cost[l][k]) / double(p.layers[l].out * p.layers[l].in);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

nlohmann::ordered_json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nullptr; }

// One column of the text table: `text` right-aligned under `header`, at least 14 wide.
std::string column(const std::string& header, const std::string& text) {
  char buf[512];
  std::snprintf(buf, sizeof buf, " %*s", std::max<int>(14, int(header.size())), text.c_str());
  return buf;
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

}  // namespace

nlohmann::ordered_json autoscheme_json(const Model& model, const AutoSchemeResult& r) {
  const AllocProblem& p = r.problem;
  nlohmann::ordered_json j;
  j["model"] = model.path();
  j["options"] = nlohmann::ordered_json::array();
  for (const AllocOption& o : p.options)
    j["options"].push_back({{"name", o.name}, {"scheme", nlohmann::ordered_json(o.scheme.to_json())}});
  j["weight_term"] = r.weight_term;
  j["deltaloss_target"] = r.target == DeltaLossTarget::FullPrecision ? "fp" : "labels";
  j["ignore_scale_zp_bits"] = p.ignore_scale_zp_bits;
  j["bit_cost"] = p.file_bits ? "file" : "spec";
  j["fused_groups"] = p.fused;
  j["calibration"] = r.calibration;
  j["seconds"] = r.seconds;
  j["option_passes"] = nlohmann::ordered_json::array();
  for (size_t k = 0; k < r.per_option.size(); ++k) {
    const OptionScores& s = r.per_option[k];
    nlohmann::ordered_json e = s.scores.to_json();
    e.erase("score");
    e["option"] = p.options[k].name;
    e["cache_hit"] = s.cache_hit;
    j["option_passes"].push_back(e);
  }
  j["allocations"] = nlohmann::ordered_json::array();
  for (const Allocation& a : r.allocations)
    j["allocations"].push_back({{"name", allocation_stem(a)}, {"allocator", to_string(a.allocator)},
                                {"target_avg_bits", a.target_avg_bits}, {"avg_bits", a.avg_bits}, {"bits", a.bits},
                                {"score", finite_or_null(a.score)}, {"dp_states", a.dp_states},
                                {"measured_kld", finite_or_null(a.measured_kld)},
                                {"unrefined_kld", finite_or_null(a.unrefined_kld)},
                                {"refine_evaluations", a.refine_evaluations}});
  if (!r.best.empty()) {
    j["best_measured"] = nlohmann::ordered_json::array();
    for (size_t i : r.best) j["best_measured"].push_back(allocation_stem(r.allocations[i]));
  }
  j["layers"] = nlohmann::ordered_json::array();
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const AllocLayer& L = p.layers[l];
    nlohmann::ordered_json row = {{"name", L.name}, {"block", L.block}, {"proj", p.blocks[L.block].linears[size_t(L.linear)].label},
                                  {"shape", {L.out, L.in}}, {"weights", L.out * L.in}};
    row["options"] = nlohmann::ordered_json::array();
    for (size_t k = 0; k < p.options.size(); ++k) {
      nlohmann::ordered_json o = {{"option", p.options[k].name}, {"fits", p.cost[l][k] >= 0}};
      if (p.cost[l][k] >= 0) o["bits"] = p.cost[l][k];
      if (r.has_scores && std::isfinite(r.scores[l][k])) o["score"] = r.scores[l][k];
      row["options"].push_back(o);
    }
    row["chosen"] = nlohmann::ordered_json::object();
    for (const Allocation& a : r.allocations) row["chosen"][allocation_stem(a)] = p.options[size_t(a.option[l])].name;
    j["layers"].push_back(row);
  }
  return j;
}

std::string autoscheme_table(const AutoSchemeResult& r) {
  const AllocProblem& p = r.problem;
  std::ostringstream os;
  for (const Allocation& a : r.allocations) {
    os << allocation_stem(a) << ": " << fmt("%.4f", a.avg_bits) << " bits/weight (target " << a.target_avg_bits
       << ", " << a.bits << " bits)";
    if (std::isfinite(a.score)) os << ", DeltaLoss " << fmt("%.5g", a.score);
    if (std::isfinite(a.measured_kld)) os << ", measured KLD " << fmt("%.6f", a.measured_kld);
    if (std::isfinite(a.unrefined_kld))
      os << " (refined from " << fmt("%.6f", a.unrefined_kld) << " in " << a.refine_evaluations << " evaluations)";
    os << "\n";
  }
  if (!r.best.empty()) {
    os << "lowest measured KLD:";
    for (size_t i : r.best) os << " " << allocation_stem(r.allocations[i]);
    os << "\n";
  }
  char line[512];
  std::snprintf(line, sizeof line, "\n%-34s %-10s", "layer", "shape");
  os << line;
  for (const AllocOption& o : p.options) os << column(o.name + " score", o.name + " score");
  for (const Allocation& a : r.allocations) os << column(allocation_stem(a), allocation_stem(a));
  os << "\n";
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const AllocLayer& L = p.layers[l];
    std::snprintf(line, sizeof line, "%-34s %-10s", L.name.c_str(),
                  (std::to_string(L.out) + "x" + std::to_string(L.in)).c_str());
    os << line;
    for (size_t k = 0; k < p.options.size(); ++k) {
      const double s = r.has_scores ? r.scores[l][k] : std::nan("");
      os << column(p.options[k].name + " score", p.cost[l][k] < 0 ? "n/a" : std::isfinite(s) ? fmt("%.4g", s) : "-");
    }
    for (const Allocation& a : r.allocations) {
      const size_t k = size_t(a.option[l]);
      os << column(allocation_stem(a), p.options[k].name + " " + fmt("%.2f", bits_per_weight(p, l, k)));
    }
    os << "\n";
  }
  return os.str();
}

namespace {

// --- HTML / SVG -----------------------------------------------------------------------------

// Blue (low) -> pale yellow -> red (high) for t in [0, 1].
std::string ramp(double t) {
  static const double stops[3][3] = {{44, 123, 182}, {255, 255, 191}, {215, 25, 28}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
  const int seg = t < 0.5 ? 0 : 1;
  const double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(stops[seg][0] + u * (stops[seg + 1][0] - stops[seg][0])),
                int(stops[seg][1] + u * (stops[seg + 1][1] - stops[seg][1])),
                int(stops[seg][2] + u * (stops[seg + 1][2] - stops[seg][2])));
  return buf;
}

struct GridCell {
  bool present = false;
  double t = 0;        // colour position in [0, 1]
  std::string text;    // label
  std::string tip;     // <title> tooltip
};

int64_t n_blocks(const AllocProblem& p) {
  int64_t n = 0;
  for (const AllocLayer& l : p.layers) n = std::max(n, l.block + 1);
  return n;
}

// The grid's columns: the labels of the widest block's linears, then those only other blocks
// have (a MoE model's dense MLP: gate, up, down), in their order.
std::vector<std::string> grid_columns(const BlockDescs& blocks) {
  std::vector<std::string> cols;
  for (const LinearDesc& l : blocks.widest().linears) cols.push_back(l.label);
  for (const BlockDesc& d : blocks.kinds)
    for (const LinearDesc& l : d.linears)
      if (std::find(cols.begin(), cols.end(), l.label) == cols.end()) cols.push_back(l.label);
  return cols;
}

// Layer l's column in the grid.
size_t grid_column(const AllocProblem& p, const std::vector<std::string>& cols, size_t l) {
  const std::string& label = p.blocks[p.layers[l].block].linears[size_t(p.layers[l].linear)].label;
  return size_t(std::find(cols.begin(), cols.end(), label) - cols.begin());
}

// Blocks as rows, the linears' labels (grid_columns) as columns.
std::string svg_grid(const std::vector<std::string>& labels, const std::vector<std::vector<GridCell>>& cells) {
  const int cw = 78, ch = 20, left = 34, top = 18;
  const int rows = int(cells.size()), cols = int(labels.size());
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << left + cw * cols + 2 << "' height='"
    << top + ch * rows + 2 << "' font-family='sans-serif' font-size='10'>";
  for (int c = 0; c < cols; ++c)
    s << "<text x='" << left + cw * c + cw / 2 << "' y='12' text-anchor='middle'>" << labels[size_t(c)]
      << "</text>";
  for (int b = 0; b < rows; ++b) {
    const int y = top + ch * b;
    s << "<text x='" << left - 4 << "' y='" << y + 14 << "' text-anchor='end'>" << b << "</text>";
    for (int c = 0; c < cols; ++c) {
      const GridCell& g = cells[size_t(b)][size_t(c)];
      const int x = left + cw * c;
      s << "<rect x='" << x << "' y='" << y << "' width='" << cw - 1 << "' height='" << ch - 1 << "' fill='"
        << (g.present ? ramp(g.t) : "#eeeeee") << "'><title>" << html_escape(g.tip) << "</title></rect>";
      if (g.present)
        s << "<text x='" << x + cw / 2 << "' y='" << y + 13 << "' text-anchor='middle'>" << html_escape(g.text)
          << "</text>";
    }
  }
  s << "</svg>";
  return s.str();
}

std::string allocation_chart(const AutoSchemeResult& r, const Allocation& a, double lo, double hi) {
  const AllocProblem& p = r.problem;
  const std::vector<std::string> cols = grid_columns(p.blocks);
  std::vector<std::vector<GridCell>> cells(size_t(n_blocks(p)), std::vector<GridCell>(cols.size()));
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const size_t k = size_t(a.option[l]);
    const double bpw = bits_per_weight(p, l, k);
    GridCell& g = cells[size_t(p.layers[l].block)][grid_column(p, cols, l)];
    g = {true, hi > lo ? (bpw - lo) / (hi - lo) : 0.5, p.options[k].name,
         p.layers[l].name + ": " + p.options[k].name + ", " + fmt("%.3f", bpw) + " bits/weight"};
  }
  std::ostringstream s;
  s << "<figure><figcaption><b>" << html_escape(allocation_stem(a)) << "</b>: " << fmt("%.4f", a.avg_bits)
    << " bits/weight";
  if (std::isfinite(a.score)) s << ", DeltaLoss " << fmt("%.4g", a.score);
  if (std::isfinite(a.measured_kld)) s << ", measured KLD " << fmt("%.6f", a.measured_kld);
  s << "</figcaption>" << svg_grid(cols, cells) << "</figure>";
  return s.str();
}

std::string score_chart(const AutoSchemeResult& r, size_t k) {
  const AllocProblem& p = r.problem;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t l = 0; l < p.layers.size(); ++l)
    if (std::isfinite(r.scores[l][k]) && r.scores[l][k] > 0) {
      lo = std::min(lo, std::log10(r.scores[l][k]));
      hi = std::max(hi, std::log10(r.scores[l][k]));
    }
  const std::vector<std::string> cols = grid_columns(p.blocks);
  std::vector<std::vector<GridCell>> cells(size_t(n_blocks(p)), std::vector<GridCell>(cols.size()));
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const double s = r.scores[l][k];
    if (!std::isfinite(s)) continue;
    const double t = s > 0 && hi > lo ? (std::log10(s) - lo) / (hi - lo) : 0.0;
    cells[size_t(p.layers[l].block)][grid_column(p, cols, l)] = {true, t, fmt("%.3g", s),
                                                                    p.layers[l].name + ": " + fmt("%.6g", s)};
  }
  return "<figure><figcaption><b>" + html_escape(p.options[k].name) +
         "</b> DeltaLoss per layer (colour: log scale)</figcaption>" + svg_grid(cols, cells) + "</figure>";
}

const char* series_colour(size_t i) {
  static const char* c[] = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  return c[i % 8];
}

// A line chart of y(avg_bits) per label; `y` picks PPL or KLD (negative = absent), `y_err` its
// error bar (none when null).
std::string curve_chart(const std::vector<EvalPoint>& pts, const std::string& ylabel, double EvalPoint::*y,
                        double EvalPoint::*y_err) {
  auto value = [&](const EvalPoint& e) { return e.*y; };
  auto err = [&](const EvalPoint& e) { return y_err ? e.*y_err : 0.0; };
  std::map<std::string, std::vector<EvalPoint>> series;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const EvalPoint& e : pts) {
    if (value(e) < 0) continue;
    series[e.label].push_back(e);
    x0 = std::min(x0, e.avg_bits);
    x1 = std::max(x1, e.avg_bits);
    y0 = std::min(y0, value(e) - err(e));
    y1 = std::max(y1, value(e) + err(e));
  }
  if (series.empty() || !(x1 > x0)) return "";
  if (!(y1 > y0)) y1 = y0 + 1;
  const double W = 560, H = 320, L = 60, R = 150, T = 16, B = 40;
  const double px = (x1 - x0) * 0.05, py = (y1 - y0) * 0.08;
  x0 -= px; x1 += px; y0 -= py; y1 += py;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='11'><rect x='" << L << "' y='" << T << "' width='" << W - L - R
    << "' height='" << H - T - B << "' fill='none' stroke='#999'/>";
  for (int i = 0; i <= 4; ++i) {
    const double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    s << "<text x='" << X(xv) << "' y='" << H - B + 14 << "' text-anchor='middle'>" << fmt("%.2f", xv) << "</text>"
      << "<text x='" << L - 4 << "' y='" << Y(yv) + 4 << "' text-anchor='end'>" << fmt("%.4g", yv) << "</text>";
  }
  s << "<text x='" << (L + W - R) / 2 << "' y='" << H - 6 << "' text-anchor='middle'>average bits per weight</text>"
    << "<text x='12' y='" << (T + H - B) / 2 << "' transform='rotate(-90 12 " << (T + H - B) / 2
    << ")' text-anchor='middle'>" << html_escape(ylabel) << "</text>";
  size_t si = 0;
  for (auto& [label, v] : series) {
    std::sort(v.begin(), v.end(), [](const EvalPoint& a, const EvalPoint& b) { return a.avg_bits < b.avg_bits; });
    const char* col = series_colour(si);
    std::ostringstream path;
    for (size_t i = 0; i < v.size(); ++i) {
      const double x = X(v[i].avg_bits), y = Y(value(v[i]));
      path << (i ? " L" : "M") << x << " " << y;
      s << "<line x1='" << x << "' x2='" << x << "' y1='" << Y(value(v[i]) - err(v[i])) << "' y2='"
        << Y(value(v[i]) + err(v[i])) << "' stroke='" << col << "'/><circle cx='" << x << "' cy='" << y
        << "' r='3.5' fill='" << col << "'><title>" << html_escape(label) << ": " << fmt("%.4f", v[i].avg_bits)
        << " bits, " << fmt("%.5g", value(v[i])) << "</title></circle>";
    }
    s << "<path d='" << path.str() << "' fill='none' stroke='" << col << "' stroke-width='1.5'/>";
    const double ly = T + 14 + 16 * double(si);
    s << "<rect x='" << W - R + 10 << "' y='" << ly - 8 << "' width='10' height='10' fill='" << col << "'/><text x='"
      << W - R + 24 << "' y='" << ly + 1 << "'>" << html_escape(label) << "</text>";
    ++si;
  }
  s << "</svg>";
  return s.str();
}

std::string legend(double lo, double hi) {
  std::ostringstream s;
  s << "<p>Colour = bits per weight of the chosen option: ";
  for (int i = 0; i <= 4; ++i)
    s << "<span class='sw' style='background:" << ramp(i / 4.0) << "'>" << fmt("%.2f", lo + (hi - lo) * i / 4)
      << "</span>";
  s << "</p>";
  return s.str();
}

}  // namespace

std::string autoscheme_html(const std::string& title, const AutoSchemeResult& r, const std::vector<EvalPoint>& evals) {
  const AllocProblem& p = r.problem;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t l = 0; l < p.layers.size(); ++l)
    for (size_t k = 0; k < p.options.size(); ++k)
      if (p.cost[l][k] >= 0) {
        lo = std::min(lo, bits_per_weight(p, l, k));
        hi = std::max(hi, bits_per_weight(p, l, k));
      }
  std::ostringstream h;
  h << "<!DOCTYPE html><html><head><meta charset='utf-8'><title>AutoScheme: " << html_escape(title)
    << "</title><style>body{font-family:sans-serif;margin:20px;max-width:1400px}figure{display:inline-block;"
       "margin:8px 16px 8px 0;vertical-align:top}figcaption{margin-bottom:4px}.sw{display:inline-block;padding:2px 8px;"
       "margin-right:2px;font-size:11px}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
       "padding:2px 6px;text-align:right}td:first-child{text-align:left}</style></head><body>";
  h << "<h1>AutoScheme: " << html_escape(title) << "</h1><p>Options:";
  for (const AllocOption& o : p.options) h << " <b>" << html_escape(o.name) << "</b>";
  h << ". DeltaLoss terms: " << (r.weight_term ? "weights and activations" : "activations only (no weight-only option, spec §4.4)")
    << ". Bits "
    << (p.file_bits ? "as stored in the file" : p.ignore_scale_zp_bits ? "without scales and zero points (spec §4.3)"
                                                                       : "with scales and zero points (spec §4.3)")
    << (p.fused ? "; q/k/v and gate/up share one option" : "") << ".</p>";
  if (!r.calibration.empty()) h << "<p>Calibration: " << html_escape(r.calibration.dump()) << "</p>";
  const std::string curve = curve_chart(evals, "perplexity", &EvalPoint::ppl, &EvalPoint::ppl_stderr);
  const std::string kcurve = curve_chart(evals, "KL divergence", &EvalPoint::kld, nullptr);
  if (!curve.empty()) h << "<h2>Quality versus average bits</h2>" << curve << kcurve;
  h << "<h2>Allocations</h2>" << legend(lo, hi);
  for (const Allocation& a : r.allocations) h << allocation_chart(r, a, lo, hi);
  if (r.has_scores) {
    h << "<h2>DeltaLoss per layer</h2>";
    for (size_t k = 0; k < p.options.size(); ++k) h << score_chart(r, k);
  }
  h << "<h2>Table</h2><pre>" << html_escape(autoscheme_table(r)) << "</pre></body></html>\n";
  return h.str();
}

}  // namespace sr
