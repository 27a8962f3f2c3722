#include "cli/flag_values.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <initializer_list>
#include <utility>

#include "common/error.h"
#include "common/input_file.h"
#include "common/limits.h"
#include "common/strings.h"

namespace sr::cli {

std::vector<AllocOption> parse_alloc_options(const std::string& text) {
  std::vector<std::string> parts;
  std::string cur;
  int depth = 0;
  for (char ch : text) {
    depth += ch == '{' ? 1 : ch == '}' ? -1 : 0;
    if (ch == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  parts.push_back(cur);
  std::vector<AllocOption> out;
  for (std::string p : parts) {
    p.erase(0, p.find_first_not_of(" \t"));
    p.erase(p.find_last_not_of(" \t") + 1);
    SR_CHECK(!p.empty(), "[--options] empty entry in '", text, "'");
    std::string spec = p;
    if (spec[0] != '{') std::replace(spec.begin(), spec.end(), ';', ',');
    QuantScheme s;
    try {
      s = parse_scheme(spec);
    } catch (const Error& e) {
      const bool gguf = p.rfind("gguf:", 0) == 0 || p.rfind("GGUF:", 0) == 0;
      fail("[--options] '", p, "': ", e.what(),
           gguf ? " (GGUF k-quant options need the ggml-type schemes of quant/formats/scheme.h, not available yet)" : "");
    }
    bool dup = false;
    for (const AllocOption& o : out) dup |= o.scheme == s;
    if (!dup) out.push_back({p, s});
  }
  return out;
}

namespace {

// The value whose spelling in `rows` is `s`; otherwise an error: "<expected>, got '<s>'".
template <typename T>
T spelled(const std::string& s, std::initializer_list<std::pair<const char*, T>> rows, const char* expected) {
  for (const auto& [spelling, value] : rows)
    if (s == spelling) return value;
  fail(expected, ", got '", s, "'");
}

}  // namespace

FusePolicy parse_fuse_policy(const std::string& s) {
  return spelled<FusePolicy>(s, {{"auto", FusePolicy::Auto}, {"on", FusePolicy::On}, {"off", FusePolicy::Off}},
                             "--fuse_groups must be auto, on or off");
}

BitCost parse_bit_cost(const std::string& s) {
  return spelled<BitCost>(s, {{"auto", BitCost::Auto}, {"spec", BitCost::Spec}, {"file", BitCost::File}},
                          "--bit_cost must be auto, spec or file");
}

AllocatorKind parse_allocator(const std::string& s) {
  using K = AllocatorKind;
  return spelled<K>(s, {{"deltaloss", K::DeltaLoss}, {"uniform", K::Uniform}, {"head8", K::Head}, {"head", K::Head},
                        {"tail8", K::Tail}, {"tail", K::Tail}, {"random", K::Random}},
                    "--allocator must be deltaloss, uniform, head8, tail8 or random");
}

ProbeEncoder parse_probe_encoder(const std::string& s) {
  return spelled<ProbeEncoder>(s, {{"rtn", ProbeEncoder::Rtn}, {"opt_rtn", ProbeEncoder::OptRtn},
                                   {"opt-rtn", ProbeEncoder::OptRtn}},
                               "--measure_encoder must be rtn or opt_rtn");
}

Protocol parse_protocol(const std::string& s) {
  return spelled<Protocol>(s, {{"llamacpp", Protocol::LlamaCpp}, {"llama.cpp", Protocol::LlamaCpp},
                               {"windows", Protocol::Windows}},
                           "--protocol must be 'llamacpp' or 'windows'");
}

namespace {

// The type among `valid` whose ggml name is `name` (any case); otherwise an error naming the
// type and listing the valid ones.
GgmlType type_among(const std::string& source, const std::string& name, const std::vector<GgmlType>& valid) {
  std::string list;
  for (GgmlType t : valid) {
    if (ascii_lower(ggml_type_name(t)) == ascii_lower(trim(name))) return t;
    list += (list.empty() ? "" : ", ") + ascii_lower(ggml_type_name(t));
  }
  fail(source, ": unknown or unwritable type '", name, "' (valid: ", list, ")");
}

}  // namespace

GgufTensorTypeRule parse_tensor_type(const std::string& text, const std::string& source) {
  const size_t eq = text.rfind('=');
  SR_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(), source, ": expected REGEX=TYPE (e.g. "
           "attn_v=q8_0), got '", text, "'");
  GgufTensorTypeRule r;
  r.pattern = SafeRegex(text.substr(0, eq), source);
  r.type = type_among(source + " '" + text + "'", text.substr(eq + 1), gguf_matrix_types());
  return r;
}

std::vector<GgufTensorTypeRule> read_tensor_type_file(const std::string& path) {
  std::istringstream in(read_input_file(path, limits::kMaxJsonFileBytes, "--tensor_type_file"));
  std::vector<GgufTensorTypeRule> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    out.push_back(parse_tensor_type(line, "--tensor_type_file " + path + ":" + std::to_string(n)));
  }
  return out;
}

GgmlType parse_written_type(const std::string& flag, const std::string& name) {
  return type_among(flag, name, ggml_supported_types());
}

double parse_size(const std::string& flag, const std::string& text) {
  const std::string t = trim(text);
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(t.c_str(), &end);
  std::string suffix = ascii_lower(end ? std::string(end) : "");
  for (const char* tail : {"ib", "b"})  // "GiB" and "GB" mean "G"
    if (suffix.size() == std::string(tail).size() + 1 && ends_with(suffix, tail)) suffix.resize(1);
  double unit = 0;
  for (const auto& [s, u] : {std::make_pair("", 1.0), std::make_pair("b", 1.0), std::make_pair("k", 1024.0),
                             std::make_pair("m", 1048576.0), std::make_pair("g", 1073741824.0),
                             std::make_pair("t", 1099511627776.0)})
    if (suffix == s) unit = u;
  SR_CHECK(!t.empty() && end != t.c_str() && errno == 0 && unit > 0 && x > 0, flag,
           " expects a size such as 1.5G, 800M or 123456 (bytes), got '", text, "'");
  return x * unit;
}

}  // namespace sr::cli
