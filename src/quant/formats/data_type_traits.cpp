// The data type table's torch-free half (contract in data_type_traits.h).
#include "quant/formats/data_type_traits.h"

#include "common/error.h"

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

using D = DataType;

// Columns: type, name, aliases, autoround_name, quantized, check_side, block_scaled, v1_alpha.
// A function-local static: other translation units may look rows up during their static
// initialisation (test instantiation lists).
const std::vector<DataTypeTraits>& rows() {
  static const std::vector<DataTypeTraits> kRows = {
    {D::Int, "int", {}, "int", true, check_int, false, true},
    {D::MxFp, "mx_fp", {"mx_fp4", "mx_fp8"}, "mx_fp", true, check_mx<D::MxFp>, true, false},
    {D::MxFpRceil, "mx_fp_rceil", {"mx_fp4_rceil", "mx_fp8_rceil"}, "mx_fp_rceil", true, check_mx<D::MxFpRceil>,
     true, false},
    {D::NvFp, "nv_fp", {"nv_fp4", "nv_fp4_with_static_gs"}, "nv_fp", true, check_nv, true, false},
    {D::Fp8, "fp8", {"fp8_e4m3", "fp8_sym", "fp8_static"}, "fp", true, check_fp8, false, false},
    {D::Float16, "fp16", {"float16"}, "fp", false, nullptr, false, false},
    {D::BFloat16, "bf16", {"bfloat16", "float"}, "fp", false, nullptr, false, false},
    {D::Gguf, "gguf", {}, "fp", true, nullptr, false, false},
  };
  return kRows;
}

}  // namespace

const DataTypeTraits& data_type_traits(DataType type) { return data_type_row(rows(), type); }

const std::vector<DataTypeTraits>& data_type_registry() { return rows(); }

}  // namespace sr
