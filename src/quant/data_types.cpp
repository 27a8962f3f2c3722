// The data type table: one row per DataType, with the adapters from a QuantScheme to the
// format families of quant/formats (contract in data_types.h).
#include "quant/data_types.h"

#include "common/error.h"
#include "quant/qdq.h"

namespace sr {
namespace {

// ---- validity of one scheme side ----------------------------------------------------------

void check_group(int64_t g, const char* what) {
  SR_CHECK(g > 0 || g == -1 || g == 0, "[QuantScheme] ", what, " group_size must be > 0 (weights per group), "
           "-1 (one group per output channel) or 0 (one group per tensor), got ", g);
}
void check_int(int bits, int64_t g, const char* side) {
  SR_CHECK(bits >= 2 && bits <= 8, "[QuantScheme] ", side, " int bits must be 2..8, got ", bits);
  check_group(g, side);
}
template <DataType T>
void check_mx(int bits, int64_t g, const char* side) {
  SR_CHECK(bits == 4 || bits == 8, "[QuantScheme] ", side, " ", to_string(T),
           " supports 4 (E2M1) or 8 (E4M3) bits, got ", bits);
  SR_CHECK(g > 0, "[QuantScheme] ", side, " ", to_string(T), " needs a group size > 0, got ", g);
}
void check_nv(int bits, int64_t g, const char* side) {
  SR_CHECK(bits == 4 && g == 16, "[QuantScheme] ", side, " nv_fp needs bits 4 and group size 16, got bits ", bits,
           ", group ", g);
}
void check_fp8(int bits, int64_t g, const char* side) {
  SR_CHECK(bits == 8, "[QuantScheme] ", side, " fp8 needs bits 8, got ", bits);
  check_group(g, side);
}

// The activation side of s as a weight-side scheme, so the family formats apply to it.
QuantScheme act_side(const QuantScheme& s) {
  QuantScheme a = s;
  a.bits = s.act_bits, a.group_size = s.act_group_size, a.sym = s.act_sym, a.data_type = s.act_data_type;
  return a;
}

// Short names for the adapters' parameter types.
using T = at::Tensor;
using S = QuantScheme;
using P = WeightQuantParams;

// ---- INT, MX (floor and RCEIL shared-exponent rules), NVFP4 -----------------------------

QdqResult qdq_int(const T& w, const S& s, const P& p) { return int_quant::qdq(w, int_format(s), p.t); }
Encoded encode_int(const T& w, const S& s, const P& p) { return int_quant::encode(w, int_format(s), p.t); }
T decode_int(const Encoded& e, const S& s) { return int_quant::decode(e, int_format(s)); }
T act_int(const T& x, const S& s, const ActQuantState&) { return int_quant::qdq(x, int_format(act_side(s))).w_hat; }
T search_int(const T& wg, const S& s, const T& q) { return int_quant::search_init_scale(wg, int_format(s), q); }

QdqResult qdq_mx(const T& w, const S& s, const P& p) { return mxfp::qdq(w, mx_format(s), p.t); }
Encoded encode_mx(const T& w, const S& s, const P& p) { return mxfp::encode(w, mx_format(s), p.t); }
T decode_mx(const Encoded& e, const S& s) { return mxfp::decode(e, mx_format(s)); }
T act_mx(const T& x, const S& s, const ActQuantState&) { return mxfp::qdq(x, mx_format(act_side(s))).w_hat; }
T search_mx(const T& wg, const S& s, const T& q) { return mxfp::search_init_scale(wg, mx_format(s), q); }

QdqResult qdq_nv(const T& w, const S& s, const P& p) { return nvfp::qdq(w, nv_format(s), p.t, p.global_scale); }
Encoded encode_nv(const T& w, const S& s, const P& p) { return nvfp::encode(w, nv_format(s), p.t, p.global_scale); }
T decode_nv(const Encoded& e, const S& s) { return nvfp::decode(e, nv_format(s)); }
// Static schemes take the calibrated act_max.
T act_nv(const T& x, const S& s, const ActQuantState& st) {
  return nvfp::qdq_act(x, nv_format(act_side(s)), s.act_dynamic ? T() : st.act_max);
}
T search_nv(const T& wg, const S& s, const T& q) { return nvfp::search_init_scale(wg, nv_format(s), q); }
T global_scale_nv(const T& w) { return nvfp::global_scale(w); }

// ---- FP8 --------------------------------------------------------------------------------------

QdqResult qdq_fp8(const T& w, const S& s, const P& p) { return fp8::qdq(w, fp8_format(s), p.t); }
Encoded encode_fp8(const T& w, const S& s, const P& p) { return fp8::encode(w, fp8_format(s), p.t); }
T decode_fp8(const Encoded& e, const S& s) { return fp8::decode(e, fp8_format(s)); }
// Static schemes scale by the calibrated act_max, times the tuned act_max_scale when given.
T act_fp8(const T& x, const S& s, const ActQuantState& st) {
  Tunables t;
  T tmax;
  if (!s.act_dynamic) {
    SR_CHECK(st.act_max.defined(), "[qdq_act] static fp8 activations need a calibrated act_max");
    tmax = st.act_max;
    const auto g = group_layout(x.sizes(), s.act_group_size);
    if (st.act_max_scale.defined()) t.beta = st.act_max_scale.to(at::kFloat).reshape({1}).expand({g.n_groups});
  }
  return fp8::qdq(x, fp8_format(act_side(s)), t, tmax).w_hat;
}

// ---- 16-bit floats: not quantized ---------------------------------------------------------

QdqResult qdq_float(const T& w, const S&, const P&) { return {w.to(at::kFloat), T(), T()}; }

// ---- GGUF block types (quant/gguf_qdq.h) ------------------------------------------------

// The frozen parameters of a GGUF weight: p's, or llama.cpp's ref search (RTN) when p has none.
std::shared_ptr<const gguf_qdq::Frozen> frozen_of(const T& w, const S& s, const P& p) {
  if (p.ggml) {
    SR_CHECK(p.ggml->type == s.ggml_type, "[qdq] parameters frozen for ", ggml_type_name(p.ggml->type),
             " used with scheme ", s.name());
    return p.ggml;
  }
  return gguf_qdq::freeze(w, s.ggml_type, T(), /*searched_codes=*/true);
}
QdqResult qdq_gguf(const T& w, const S& s, const P& p) {
  return {gguf_qdq::qdq(w, *frozen_of(w, s, p), p.t.v), T(), T()};
}
Encoded encode_gguf(const T& w, const S& s, const P& p) {
  Encoded e;
  e.ggml = gguf_qdq::encode(w, *frozen_of(w, s, p), p.t.v);
  return e;
}
T decode_gguf(const Encoded& e, const S& s) {
  SR_CHECK(e.ggml.defined() && e.ggml.dim() == 2, "[decode_weight] ", s.name(), " needs the ggml rows");
  return gguf_qdq::decode(e.ggml, s.ggml_type, gguf_qdq::cols_of(s.ggml_type, e.ggml.size(1)));
}

// ---- the table ------------------------------------------------------------------------------

using D = DataType;
#define SR_FAMILY(f) qdq_##f, encode_##f, decode_##f, act_##f

// Columns: type, name, aliases, autoround_name, quantized, check_side, block_scaled, qdq,
// encode, decode, qdq_act, search_init_scale, global_scale, v1_alpha.
// A function-local static: other translation units may look rows up during their static
// initialisation (test instantiation lists).
const std::vector<DataTypeTraits>& rows() {
  static const std::vector<DataTypeTraits> kRows = {
    {D::Int, "int", {}, "int", true, check_int, false, SR_FAMILY(int), search_int, nullptr, true},
    {D::MxFp, "mx_fp", {"mx_fp4", "mx_fp8"}, "mx_fp", true, check_mx<D::MxFp>, true, SR_FAMILY(mx), search_mx,
     nullptr, false},
    {D::MxFpRceil, "mx_fp_rceil", {"mx_fp4_rceil", "mx_fp8_rceil"}, "mx_fp_rceil", true, check_mx<D::MxFpRceil>,
     true, SR_FAMILY(mx), search_mx, nullptr, false},
    {D::NvFp, "nv_fp", {"nv_fp4", "nv_fp4_with_static_gs"}, "nv_fp", true, check_nv, true, SR_FAMILY(nv), search_nv,
     global_scale_nv, false},
    {D::Fp8, "fp8", {"fp8_e4m3", "fp8_sym", "fp8_static"}, "fp", true, check_fp8, false, SR_FAMILY(fp8), nullptr,
     nullptr, false},
    {D::Float16, "fp16", {"float16"}, "fp", false, nullptr, false, qdq_float, nullptr, nullptr, nullptr, nullptr,
     nullptr, false},
    {D::BFloat16, "bf16", {"bfloat16", "float"}, "fp", false, nullptr, false, qdq_float, nullptr, nullptr, nullptr,
     nullptr, nullptr, false},
    {D::Gguf, "gguf", {}, "fp", true, nullptr, false, qdq_gguf, encode_gguf, decode_gguf, nullptr, nullptr, nullptr,
     false},
  };
  return kRows;
}
#undef SR_FAMILY

}  // namespace

const DataTypeTraits& data_type_traits(DataType type) {
  const auto i = size_t(type);
  SR_CHECK(i < rows().size() && rows()[i].type == type, "[data_type] unknown data type id ", int(type));
  return rows()[i];
}

const std::vector<DataTypeTraits>& data_type_registry() { return rows(); }

}  // namespace sr
