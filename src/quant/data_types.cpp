// The data type table's qdq half: one row per DataType, with the adapters from a QuantScheme
// to the format families of quant/formats (contract in data_types.h).
#include "quant/data_types.h"

#include "common/error.h"
#include "quant/qdq.h"

namespace sr {
namespace {

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

// Columns: type, qdq, encode, decode, qdq_act, search_init_scale, global_scale.
// A function-local static: other translation units may look rows up during their static
// initialisation (test instantiation lists).
const std::vector<DataTypeQdq>& rows() {
  static const std::vector<DataTypeQdq> kRows = {
    {D::Int, SR_FAMILY(int), search_int, nullptr},
    {D::MxFp, SR_FAMILY(mx), search_mx, nullptr},
    {D::MxFpRceil, SR_FAMILY(mx), search_mx, nullptr},
    {D::NvFp, SR_FAMILY(nv), search_nv, global_scale_nv},
    {D::Fp8, SR_FAMILY(fp8), nullptr, nullptr},
    {D::Float16, qdq_float, nullptr, nullptr, nullptr, nullptr, nullptr},
    {D::BFloat16, qdq_float, nullptr, nullptr, nullptr, nullptr, nullptr},
    {D::Gguf, qdq_gguf, encode_gguf, decode_gguf, nullptr, nullptr, nullptr},
  };
  return kRows;
}
#undef SR_FAMILY

}  // namespace

const DataTypeQdq& data_type_qdq(DataType type) { return data_type_row(rows(), type); }

const std::vector<DataTypeQdq>& data_type_qdq_registry() { return rows(); }

}  // namespace sr
