#include "cli/flag_values.h"

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "common/error.h"

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

}  // namespace sr::cli
