#include "cli/flag_values.h"

#include <algorithm>

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

FusePolicy parse_fuse_policy(const std::string& s) {
  if (s == "auto") return FusePolicy::Auto;
  if (s == "on") return FusePolicy::On;
  if (s == "off") return FusePolicy::Off;
  fail("--fuse_groups must be auto, on or off, got '", s, "'");
}

BitCost parse_bit_cost(const std::string& s) {
  if (s == "auto") return BitCost::Auto;
  if (s == "spec") return BitCost::Spec;
  if (s == "file") return BitCost::File;
  fail("--bit_cost must be auto, spec or file, got '", s, "'");
}

AllocatorKind parse_allocator(const std::string& s) {
  if (s == "deltaloss") return AllocatorKind::DeltaLoss;
  if (s == "uniform") return AllocatorKind::Uniform;
  if (s == "head8" || s == "head") return AllocatorKind::Head;
  if (s == "tail8" || s == "tail") return AllocatorKind::Tail;
  if (s == "random") return AllocatorKind::Random;
  fail("--allocator must be deltaloss, uniform, head8, tail8 or random, got '", s, "'");
}

ProbeEncoder parse_probe_encoder(const std::string& s) {
  if (s == "rtn") return ProbeEncoder::Rtn;
  if (s == "opt_rtn" || s == "opt-rtn") return ProbeEncoder::OptRtn;
  fail("--measure_encoder must be rtn or opt_rtn, got '", s, "'");
}

Protocol parse_protocol(const std::string& s) {
  if (s == "llamacpp" || s == "llama.cpp") return Protocol::LlamaCpp;
  if (s == "windows") return Protocol::Windows;
  fail("--protocol must be 'llamacpp' or 'windows', got '", s, "'");
}

}  // namespace sr::cli
