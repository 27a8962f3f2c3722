#include "model/tensor_convert.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "io/safetensors.h"

namespace sr {
namespace {

struct DtypeRow { const char* name; at::ScalarType type; };
constexpr DtypeRow kDtypes[] = {
    {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16}, {"F64", at::kDouble},
    {"I8", at::kChar},   {"U8", at::kByte},   {"I16", at::kShort},     {"I32", at::kInt},
    {"I64", at::kLong},  {"BOOL", at::kBool},
};

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

at::Tensor entry_to_float(const TensorEntry& e) {
  if (e.dtype == "F32" || e.dtype == "F16" || e.dtype == "BF16")
    return at::from_blob(const_cast<uint8_t*>(e.data), at::IntArrayRef(e.shape), scalar_type_of(e.dtype))
        .to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  fail("[model] tensor ", e.describe(), ": dtype ", e.dtype, " is not supported for weights (F32, F16, BF16)");
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
