#include "model/tensor_convert.h"

#include <algorithm>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/strings.h"
#include "io/safetensors.h"
#include "quant/formats/ggml_types.h"

namespace sr {
namespace {

struct DtypeRow { const char* name; at::ScalarType type; };
constexpr DtypeRow kDtypes[] = {
    {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16}, {"F64", at::kDouble},
    {"I8", at::kChar},   {"U8", at::kByte},   {"I16", at::kShort},     {"I32", at::kInt},
    {"I64", at::kLong},  {"BOOL", at::kBool},
};

// The ggml block type an entry's dtype names ("Q4_K", "Q8_0"), or nullptr if it
// names none we can decode. F32/F16/BF16 are handled as plain dtypes instead.
const GgmlTypeTraits* ggml_block_codec(const std::string& dtype) {
  for (GgmlType t : ggml_supported_types()) {
    const GgmlTypeTraits& tr = ggml_type_traits(t);
    if (tr.block_size > 1 && ascii_upper(tr.name) == dtype) return &tr;
  }
  return nullptr;
}

// Decodes whole rows in parallel: rows are independent and each decodes to the same
// bits whatever thread runs it, so the result is deterministic.
at::Tensor dequantize_entry(const TensorEntry& e, const GgmlTypeTraits& tr) {
  const int64_t n = e.shape.empty() ? 1 : e.shape.back();
  const int64_t rows = n ? e.numel() / n : 0;
  const uint64_t row_bytes = ggml_row_bytes(tr.type, n);
  SR_CHECK(row_bytes * uint64_t(rows) == e.nbytes, "[model] tensor ", e.describe(), ": ", e.nbytes,
           " bytes, expected ", row_bytes * uint64_t(rows), " for ", rows, " rows of ", n, " ", tr.name, " elements");
  at::Tensor out = at::empty(at::IntArrayRef(e.shape), at::kFloat);
  float* y = out.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(n, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    tr.dequantize_row(e.data + uint64_t(begin) * row_bytes, y + begin * n, (end - begin) * n);
  });
  return out;
}

}  // namespace

std::string dtype_name(at::ScalarType t) {
  for (const DtypeRow& r : kDtypes) if (r.type == t) return r.name;
  fail("no safetensors dtype for torch type ", c10::toString(t));
}

at::ScalarType scalar_type_of(const std::string& dtype) {
  for (const DtypeRow& r : kDtypes) if (dtype == r.name) return r.type;
  fail("dtype ", dtype, " has no torch scalar type");
}

at::Tensor entry_to_tensor(const TensorEntry& e) {
  return at::from_blob(const_cast<uint8_t*>(e.data), at::IntArrayRef(e.shape), scalar_type_of(e.dtype)).clone();
}

namespace {

// A NaN or Inf weight would quantize to an all-NaN layer and evaluate to "PPL nan" with
// exit 0: refuse it here, once per tensor, naming it and where the first one sits.
at::Tensor finite_or_throw(at::Tensor t, const TensorEntry& e) {
  if (t.numel() == 0 || at::isfinite(t).all().item<bool>()) return t;
  const at::Tensor bad = at::logical_not(at::isfinite(t.reshape({-1})));
  const int64_t count = bad.sum().item<int64_t>();
  const int64_t first = bad.nonzero().select(1, 0)[0].item<int64_t>();
  fail("[model] tensor ", e.describe(), ": ", count, " of ", t.numel(), " values are NaN or infinite (first at flat index ",
       first, ", value ", t.reshape({-1})[first].item<float>(), "); the weights are corrupt");
}

}  // namespace

at::Tensor entry_to_float(const TensorEntry& e) {
  if (e.dtype == "F32" || e.dtype == "F16" || e.dtype == "BF16")
    return finite_or_throw(
        at::from_blob(const_cast<uint8_t*>(e.data), at::IntArrayRef(e.shape), scalar_type_of(e.dtype))
            .to(at::kFloat, /*non_blocking=*/false, /*copy=*/true),
        e);
  if (const GgmlTypeTraits* tr = ggml_block_codec(e.dtype)) return finite_or_throw(dequantize_entry(e, *tr), e);
  fail("[model] tensor ", e.describe(), ": dtype ", e.dtype,
       " is not supported for weights (supported: ", ggml_supported_type_names(), ")");
}

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  AtomicPath out(path);
  SafetensorsWriter w;
  std::vector<at::Tensor> contiguous;
  for (auto& [name, t] : tensors) {
    contiguous.push_back(t.detach().cpu().contiguous());
    w.declare(name, dtype_name(t.scalar_type()), t.sizes().vec());
  }
  w.set_metadata(metadata);
  w.begin(out.temp());
  for (size_t i = 0; i < tensors.size(); ++i)
    w.write(tensors[i].first, contiguous[i].data_ptr(), uint64_t(contiguous[i].nbytes()));
  w.finish();
  out.commit();
}

std::vector<std::pair<std::string, at::Tensor>> load_tensors(const std::string& path,
                                                              std::map<std::string, std::string>* metadata) {
  TensorStore store;
  auto meta = read_safetensors(path, store);
  if (metadata) *metadata = meta;
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const std::string& n : store.names()) out.emplace_back(n, entry_to_tensor(store.get(n)));
  return out;
}

}  // namespace sr
