// Streaming GGUF model writer (contract in gguf_export.h).
#include "export/gguf_export.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/progress.h"
#include "common/strings.h"
#include "export/gguf_encode.h"
#include "export/gguf_metadata.h"
#include "model/block_desc.h"
#include "model/gguf_arch.h"
#include "model/gguf_names.h"
#include "model/rope_layout.h"
#include "quant/formats/ggml_types.h"

namespace sr {
namespace {

// Heads whose rows convert_hf_to_gguf.py interleaves for this tensor (the block description's
// RoPE rows, weight and bias, of an architecture with interleaved RoPE); 0 if none.
int64_t interleaved_heads(const std::string& gguf_name, const ModelConfig& c) {
  const int64_t block = gguf_layer_of(gguf_name);
  if (block < 0 || !gguf_arch_of(c.arch).interleaved_rope) return 0;
  for (const LinearDesc& l : describe_block(c, block).linears)
    if (l.rope_heads > 0 && (ends_with(gguf_name, "." + l.gguf + ".weight") || ends_with(gguf_name, "." + l.gguf + ".bias")))
      return l.rope_heads;
  return 0;
}

void check_plan(const std::vector<GgufTensorPlan>& plan, const ModelConfig& c, const std::string& path) {
  const std::vector<GgufTensorPlan> want = gguf_tensor_list(c);
  SR_CHECK(plan.size() == want.size(), "[gguf] ", path, ": the plan has ", plan.size(), " tensors, the model needs ",
           want.size());
  for (size_t i = 0; i < plan.size(); ++i)
    SR_CHECK(plan[i].name == want[i].name && plan[i].shape == want[i].shape, "[gguf] ", path, ": plan entry ", i,
             " is '", plan[i].name, "' ", at::IntArrayRef(plan[i].shape), ", expected '", want[i].name, "' ",
             at::IntArrayRef(want[i].shape), " (plans come from plan_gguf_types for the same config)");
}

std::string default_name(const std::string& path) { return std::filesystem::path(path).stem().string(); }

// The file's metadata: the model's, then opt.extra_metadata (replacing equal keys in place).
std::vector<std::pair<std::string, GgufValue>> file_metadata(const std::string& path, const ModelConfig& c,
                                                             const Vocabulary& vocab, GgufMix mix,
                                                             const GgufExportOptions& opt) {
  const std::string name = opt.model_name.empty() ? default_name(path) : opt.model_name;
  auto metadata = gguf_model_metadata(c, vocab, mix, name, opt.source);
  for (const auto& [key, value] : opt.extra_metadata) {
    auto it = std::find_if(metadata.begin(), metadata.end(), [&](const auto& kv) { return kv.first == key; });
    if (it == metadata.end()) metadata.emplace_back(key, value);
    else it->second = value;
  }
  return metadata;
}

}  // namespace

uint64_t gguf_model_file_size(const std::string& path, const ModelConfig& c, const Vocabulary& vocab, GgufMix mix,
                              const std::vector<GgufTensorPlan>& plan, const GgufExportOptions& opt) {
  check_plan(plan, c, path);
  std::vector<GgufTensorDecl> tensors;
  for (const GgufTensorPlan& t : plan) tensors.push_back({t.name, t.type, t.shape});
  return gguf_file_size(file_metadata(path, c, vocab, mix, opt), tensors, opt.alignment);
}

GgufModelWriter::GgufModelWriter(const std::string& path, const ModelConfig& c, const Vocabulary& vocab,
                                 GgufMix mix, std::vector<GgufTensorPlan> plan, const GgufExportOptions& opt)
    : config_(c), plan_(std::move(plan)), progress_(opt.progress) {
  check_plan(plan_, c, path);
  out_ = std::make_unique<GgufWriter>(path, opt.alignment);
  for (auto& [key, value] : file_metadata(path, c, vocab, mix, opt)) out_->set(key, std::move(value));
  for (size_t i = 0; i < plan_.size(); ++i) {
    out_->add_tensor(plan_[i].name, plan_[i].type, plan_[i].shape);
    index_[plan_[i].name] = i;
  }
  given_.assign(plan_.size(), false);
  const std::vector<float> freqs = gguf_rope_freq_factors(c);
  if (!freqs.empty()) {  // not the caller's to give: derived from the configuration
    const size_t i = index_of("rope_freqs.weight");
    given_[i] = true;
    submit(i, ggml_encode_rows(plan_[i].type, freqs.data(), 1, int64_t(freqs.size())));
  }
}

size_t GgufModelWriter::index_of(const std::string& name) const {
  auto it = index_.find(gguf_tensor_name(name));
  SR_CHECK(it != index_.end(), "[gguf] ", out_->path(), ": the model has no tensor '", name, "' (GGUF name '",
           gguf_tensor_name(name), "')");
  return it->second;
}

const GgufTensorPlan& GgufModelWriter::planned(const std::string& name) const { return plan_[index_of(name)]; }

// Permutes q/k rows from the HF order into llama.cpp's interleaved order.
std::vector<uint8_t> GgufModelWriter::to_gguf_rows(size_t i, std::vector<uint8_t> bytes) const {
  const GgufTensorPlan& t = plan_[i];
  const int64_t heads = interleaved_heads(t.name, config_);
  if (heads == 0) return bytes;
  // A bias [rows] is F32: each of its rows is one element.
  const uint64_t row_bytes = ggml_row_bytes(t.type, t.shape.size() == 1 ? 1 : t.shape.back());
  return permute_byte_rows(bytes.data(), row_bytes, interleaved_row_sources(t.shape[0], heads));
}

// The shape of what is given for tensor t: all of it, or one expert's slice of a stacked one.
std::vector<int64_t> given_shape(const GgufTensorPlan& t, int64_t expert, const std::string& path) {
  if (expert < 0) return t.shape;
  SR_CHECK(t.shape.size() == 3 && expert < t.shape[0], "[gguf] ", path, ": tensor ", t.name, " ",
           at::IntArrayRef(t.shape), " has no expert ", expert);
  return {t.shape[1], t.shape[2]};
}

at::Tensor GgufModelWriter::check_float(size_t i, const std::vector<int64_t>& shape, const at::IntArrayRef given,
                                        const at::Tensor& imatrix) const {
  const GgufTensorPlan& t = plan_[i];
  SR_CHECK(!given_[i], "[gguf] ", out_->path(), ": tensor ", t.name, " given twice");
  SR_CHECK(given == at::IntArrayRef(shape), "[gguf] ", out_->path(), ": tensor ", t.name, " given with shape ", given,
           ", expected ", at::IntArrayRef(shape));
  const int64_t n = t.shape.back();
  SR_CHECK(imatrix.defined() || !ggml_type_traits(t.type).requires_importance, "[gguf] ", out_->path(), ": tensor ",
           t.name, " is ", ggml_type_name(t.type), ", which llama.cpp refuses without an importance matrix (\"Missing",
           " importance matrix for tensor ", t.name, " in a very low-bit quantization\"): give one for it");
  if (!imatrix.defined()) return {};
  SR_CHECK(t.weight_matrix && imatrix.numel() == n, "[gguf] ", out_->path(), ": imatrix for ", t.name, " has ",
           imatrix.numel(), " values, expected ", n, " (one per input column of a weight matrix)");
  return imatrix.detach().to(at::kFloat).contiguous();
}

void GgufModelWriter::write_float(const std::string& name, const at::Tensor& w, const at::Tensor& imatrix,
                                  int64_t expert) {
  const size_t i = index_of(name);
  const GgufTensorPlan& t = plan_[i];
  const at::Tensor imx = check_float(i, given_shape(t, expert, out_->path()), w.sizes(), imatrix);
  const int64_t n = t.shape.back(), rows = w.numel() / std::max<int64_t>(n, 1);
  at::Tensor x = w.detach().to(at::kFloat).contiguous();
  give(i, expert, ggml_encode_rows(t.type, x.data_ptr<float>(), rows, n, imx.defined() ? imx.data_ptr<float>() : nullptr));
}

void GgufModelWriter::write_float_rows(const std::string& name, const RowSource& source, const at::Tensor& imatrix,
                                       int64_t chunk_rows) {
  const size_t i = index_of(name);
  const GgufTensorPlan& t = plan_[i];
  SR_CHECK(t.shape.size() == 2, "[gguf] ", out_->path(), ": tensor ", t.name, " ", at::IntArrayRef(t.shape),
           " is not a matrix; give it whole (write_float)");
  const int64_t rows = t.shape[0], n = t.shape[1];
  const at::Tensor imx = check_float(i, t.shape, at::IntArrayRef(t.shape), imatrix);
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, (int64_t(64) << 20) / (4 * std::max<int64_t>(n, 1)));
  // Straight to the file when it is this tensor's turn and its rows keep their order.
  const bool stream = i == next_ && interleaved_heads(t.name, config_) == 0;
  std::vector<uint8_t> held;
  Progress progress("export " + t.name + " (" + ggml_type_name(t.type) + ")", int(rows), progress_);
  double last = 0;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t m = std::min(chunk_rows, rows - r0);
    const at::Tensor chunk = source(r0, m);
    SR_CHECK(chunk.defined() && chunk.sizes() == at::IntArrayRef({m, n}), "[gguf] ", out_->path(), ": rows ", r0,
             "..", r0 + m - 1, " of tensor ", t.name, " given with shape ",
             chunk.defined() ? chunk.sizes() : at::IntArrayRef(), ", expected [", m, ", ", n, "]");
    const at::Tensor x = chunk.detach().to(at::kFloat).contiguous();
    std::vector<uint8_t> bytes =
        ggml_encode_rows(t.type, x.data_ptr<float>(), m, n, imx.defined() ? imx.data_ptr<float>() : nullptr);
    if (stream) out_->write_tensor_part(t.name, bytes.data(), bytes.size());
    else held.insert(held.end(), bytes.begin(), bytes.end());
    // A line every 10 s or so: a chunk of the largest matrices takes a second or two.
    if (r0 + m == rows || progress.elapsed() - last >= 10) {
      last = progress.elapsed();
      progress.update(int(r0 + m), "tensor " + std::to_string(i + 1) + "/" + std::to_string(plan_.size()) + ", " +
                                       format_bytes(double(out_->data_written())) + " of " +
                                       format_bytes(double(out_->data_bytes())) + " written");
    }
  }
  given_[i] = true;
  if (stream) {
    ++next_;
    submit_pending();
  } else {
    submit(i, to_gguf_rows(i, std::move(held)));
  }
}

void GgufModelWriter::write_encoded(const std::string& name, const void* data, uint64_t nbytes, int64_t expert) {
  const size_t i = index_of(name);
  const GgufTensorPlan& t = plan_[i];
  const std::vector<int64_t> shape = given_shape(t, expert, out_->path());
  const uint64_t want = out_->tensor_bytes(t.name) / (expert < 0 ? 1 : uint64_t(t.shape[0]));
  SR_CHECK(nbytes == want, "[gguf] ", out_->path(), ": tensor ", t.name, expert < 0 ? "" : " (one expert)", " needs ",
           want, " bytes of ", ggml_type_name(t.type), ", got ", nbytes);
  SR_CHECK(!given_[i], "[gguf] ", out_->path(), ": tensor ", t.name, " given twice");
  const auto* p = static_cast<const uint8_t*>(data);
  give(i, expert, std::vector<uint8_t>(p, p + nbytes));
}

void GgufModelWriter::give(size_t i, int64_t expert, std::vector<uint8_t> bytes) {
  if (expert < 0) {
    given_[i] = true;
    return submit(i, to_gguf_rows(i, std::move(bytes)));
  }
  std::vector<std::vector<uint8_t>>& parts = experts_[i];
  parts.resize(size_t(plan_[i].shape[0]));
  SR_CHECK(parts[size_t(expert)].empty(), "[gguf] ", out_->path(), ": expert ", expert, " of tensor ", plan_[i].name,
           " given twice");
  parts[size_t(expert)] = std::move(bytes);
  for (const auto& part : parts)
    if (part.empty()) return;
  std::vector<uint8_t> all;
  for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
  experts_.erase(i);
  given_[i] = true;
  submit(i, std::move(all));
}

// Writes tensor i now if it is next, else holds it; then drains what became writable.
void GgufModelWriter::submit(size_t i, std::vector<uint8_t> bytes) {
  pending_[i] = std::move(bytes);
  submit_pending();
}

void GgufModelWriter::submit_pending() {
  for (auto it = pending_.find(next_); it != pending_.end(); it = pending_.find(next_)) {
    out_->write_tensor(plan_[next_].name, it->second.data(), it->second.size());
    pending_.erase(it);
    ++next_;
  }
}

void GgufModelWriter::finish() {
  for (size_t i = 0; i < plan_.size(); ++i)
    SR_CHECK(given_[i], "[gguf] ", out_->path(), ": tensor ", plan_[i].name, " (", hf_tensor_name(plan_[i].name),
             ") was never given");
  out_->finish();
}

}  // namespace sr
