// signround eval: perplexity and KL divergence (see eval/perplexity.h for the protocols), and
// zero-shot multiple choice (eval/multiple_choice.h; story cloze from any text: eval/cloze.h).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/dist_flags.h"
#include "cli/flag_values.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/sysinfo.h"
#include "eval/cloze.h"
#include "eval/logits_file.h"
#include "eval/multiple_choice.h"
#include "eval/perplexity.h"
#include "io/text.h"
#include "quant/act_hooks.h"

namespace sr::cli {

namespace {

const std::vector<FlagSpec> kEvalFlags = {
    {"model", true, "model to evaluate: HF folder, .gguf or llama2.c .bin", ""},
    {"text", true, "UTF-8 text file to score (perplexity, KLD)", ""},
    {"choices", true, "multiple-choice items (JSON lines: context, choices, label) to score", ""},
    {"cloze", true, "text file to cut story-cloze multiple-choice items from", ""},
    {"cloze-items", true, "cloze items to make", "500"},
    {"cloze-choices", true, "choices per cloze item", "4"},
    {"ctx", true, "tokens per chunk", "512"},
    {"chunks", true, "number of chunks to score", "all"},
    {"protocol", true, "llamacpp (llama-perplexity's) or windows", "llamacpp"},
    {"kld-base", true, "base model: also report KL divergence and same-top-token share (and, with "
     "multiple choice, the share of items where both pick the same choice)", ""},
    {"kld-base-logits", true, "base log-probs from a file (llama-perplexity --kl-divergence-base, or --save-logits): "
     "KLD without running the base; gives --ctx, --chunks and, without --text, the tokens", ""},
    {"save-logits", true, "write the base's scored log-probs (--kld-base's, else this model's) in llama.cpp's "
     "--kl-divergence-base format", ""},
    {"json", false, "print one JSON object on stdout", ""},
    {"quiet", false, "no progress on stderr", ""},
};

nlohmann::json quantiles_json(const std::vector<Quantile>& q) {
  nlohmann::json j = nlohmann::json::object();
  for (const Quantile& e : q) j[e.name] = e.value;
  return j;
}

// llama-perplexity --kl-divergence's figures; probabilities as fractions, not %.
nlohmann::json kld_stats_json(const KldStats& s) {
  return {{"count", s.count},
          {"ppl", s.ppl}, {"ppl_stderr", s.ppl_stderr},
          {"ppl_base", s.ppl_base}, {"ppl_base_stderr", s.ppl_base_stderr},
          {"ppl_correlation", s.ppl_correlation},
          {"ln_ppl_ratio", s.ln_ppl_ratio}, {"ln_ppl_ratio_stderr", s.ln_ppl_ratio_stderr},
          {"ppl_ratio", s.ppl_ratio}, {"ppl_ratio_stderr", s.ppl_ratio_stderr},
          {"ppl_diff", s.ppl_diff}, {"ppl_diff_stderr", s.ppl_diff_stderr},
          {"kld", s.kld}, {"kld_stderr", s.kld_stderr}, {"kld_quantiles", quantiles_json(s.kld_quantiles)},
          {"delta_p", s.dp}, {"delta_p_stderr", s.dp_stderr},
          {"delta_p_rms", s.dp_rms}, {"delta_p_rms_stderr", s.dp_rms_stderr},
          {"delta_p_quantiles", quantiles_json(s.dp_quantiles)},
          {"same_top_p", s.same_top}, {"same_top_p_stderr", s.same_top_stderr}};
}

// llama.cpp's 8-column labels: "Maximum ", "99.9%   ", " 5.0%   ", "Median  ".
std::string quantile_label(const Quantile& q) {
  if (q.name == "max") return "Maximum ";
  if (q.name == "min") return "Minimum ";
  if (q.name == "median") return "Median  ";
  char s[32];
  std::snprintf(s, sizeof s, "%5s   ", q.name.c_str());
  return s;
}

// The block llama-perplexity prints after a --kl-divergence run, in its words and units.
void print_kld_stats(const KldStats& s) {
  std::printf("\n====== Perplexity statistics ======\n");
  std::printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", s.ppl, s.ppl_stderr);
  std::printf("Mean PPL(base)                : %10.6f ± %10.6f\n", s.ppl_base, s.ppl_base_stderr);
  std::printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100 * s.ppl_correlation);
  std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", s.ln_ppl_ratio, s.ln_ppl_ratio_stderr);
  std::printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", s.ppl_ratio, s.ppl_ratio_stderr);
  std::printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", s.ppl_diff, s.ppl_diff_stderr);
  std::printf("\n====== KL divergence statistics ======\n");
  std::printf("Mean    KLD: %10.6f ± %10.6f\n", s.kld, s.kld_stderr);
  for (const Quantile& q : s.kld_quantiles)
    std::printf("%sKLD: %10.6f\n", quantile_label(q).c_str(), q.value);
  std::printf("\n====== Token probability statistics ======\n");
  std::printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100 * s.dp, 100 * s.dp_stderr);
  for (const Quantile& q : s.dp_quantiles)
    std::printf("%sΔp: %6.3f%%\n", quantile_label(q).c_str(), 100 * q.value);
  std::printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100 * s.dp_rms, 100 * s.dp_rms_stderr);
  std::printf("Same top p: %6.3f ± %5.3f %%\n", 100 * s.same_top, 100 * s.same_top_stderr);
}

nlohmann::json to_json(const EvalResult& r) {
  nlohmann::json j = {{"ppl", r.ppl},       {"ppl_stderr", r.ppl_stderr},
                      {"nll", r.nll},       {"nll_stderr", r.nll_stderr},
                      {"tokens", r.tokens}, {"chunks", r.chunks},
                      {"seconds", r.seconds}, {"tokens_per_second", r.tokens_per_second}};
  if (r.has_kld) {
    j["kld"] = r.kld;
    j["kld_stderr"] = r.kld_stderr;
    j["top1_agreement"] = r.top1;
    j["top1_agreement_stderr"] = r.top1_stderr;
    j["kld_stats"] = kld_stats_json(r.kld_stats);
  }
  return j;
}

nlohmann::json to_json(const ChoiceResult& r, const ChoiceResult* base) {
  nlohmann::json j = {{"items", r.items},       {"acc", r.acc},
                      {"acc_stderr", r.acc_stderr}, {"acc_norm", r.acc_norm},
                      {"acc_norm_stderr", r.acc_norm_stderr}, {"truncated_items", r.truncated},
                      {"seconds", r.seconds}};
  if (base) {
    j["base_acc"] = base->acc;
    j["base_acc_norm"] = base->acc_norm;
    j["agreement"] = choice_agreement(r, *base, false);
    j["agreement_norm"] = choice_agreement(r, *base, true);
  }
  return j;
}

std::vector<ChoiceItem> choice_items(const Args& a) {
  if (a.has("choices")) {
    SR_CHECK(!a.has("cloze"), "pass --choices or --cloze, not both");
    return read_choice_items(a.required("choices"));
  }
  const std::string path = a.required("cloze");
  return cloze_items_from_text(read_text_file(path), path, a.integer("cloze-items", 500), a.integer("cloze-choices", 4),
                               42);
}

void print_choices(const nlohmann::json& j, const std::string& source) {
  std::printf("choices    %s: %lld items\n", source.c_str(), (long long)j["items"].get<int64_t>());
  std::printf("acc        %.4f +/- %.4f   acc_norm %.4f +/- %.4f\n", j["acc"].get<double>(),
              j["acc_stderr"].get<double>(), j["acc_norm"].get<double>(), j["acc_norm_stderr"].get<double>());
  if (j.contains("agreement"))
    std::printf("base       acc %.4f, acc_norm %.4f; same choice %.2f %% (norm %.2f %%)\n", j["base_acc"].get<double>(),
                j["base_acc_norm"].get<double>(), 100 * j["agreement"].get<double>(),
                100 * j["agreement_norm"].get<double>());
}

// The tokens a --kld-base-logits file was made on; checks the file against the model, --ctx,
// --chunks and (if given) --text, and takes ctx and chunks from it.
std::vector<int32_t> logits_file_tokens(const Args& a, const Model& model, const LogitsFile& f, EvalOptions& opt) {
  const std::string path = a.str("kld-base-logits");
  SR_CHECK(f.n_vocab == model.config().vocab, "--kld-base-logits ", path, ": n_vocab is ", f.n_vocab,
           ", the model's vocabulary has ", model.config().vocab, " tokens");
  SR_CHECK(!a.has("ctx") || opt.ctx == f.n_ctx, "--kld-base-logits ", path, ": n_ctx is ", f.n_ctx, ", --ctx is ",
           opt.ctx, " (leave --ctx out to use the file's)");
  SR_CHECK(opt.chunks <= f.n_chunk, "--kld-base-logits ", path, ": n_chunk is ", f.n_chunk, ", fewer than --chunks ",
           opt.chunks);
  opt.ctx = f.n_ctx;
  opt.chunks = opt.chunks < 0 ? f.n_chunk : opt.chunks;
  std::vector<int32_t> ids(f.tokens.begin(), f.tokens.begin() + opt.chunks * f.n_ctx);
  if (!a.has("text")) return ids;
  const std::vector<int32_t> text_ids = model.tokenizer().encode_with_bos(read_text_file(a.str("text")));
  SR_CHECK(text_ids.size() >= ids.size(), "--kld-base-logits ", path, ": its tokens (", ids.size(),
           ") run past --text's (", text_ids.size(), ")");
  for (size_t i = 0; i < ids.size(); ++i)
    SR_CHECK(ids[i] == text_ids[i], "--kld-base-logits ", path, ": tokens differ from --text's at position ", i,
             " (file ", ids[i], ", text ", text_ids[i], "): the file was made on another text or tokenizer");
  return ids;
}

// Perplexity and KLD: tokens from --text or a --kld-base-logits file; the KLD base from a model
// (exact fp32 log-probs, or their 16-bit records when they are also saved, so that a later
// --kld-base-logits run reproduces this run's figures) or from a file; --save-logits.
EvalResult eval_text(const Args& a, const Model& model, const Model* base, EvalOptions& opt) {
  const bool save = a.has("save-logits");
  std::unique_ptr<LogitsFile> file;
  if (a.has("kld-base-logits")) {
    SR_CHECK(!base, "pass --kld-base or --kld-base-logits, not both");
    SR_CHECK(!save, "--save-logits saves a base's log-probs; with --kld-base-logits they are in a file already");
    file = std::make_unique<LogitsFile>(read_logits_file(a.required("kld-base-logits")));
  }
  SR_CHECK(opt.protocol == Protocol::LlamaCpp || (!file && !save),
           "--kld-base-logits and --save-logits hold the llamacpp protocol's positions; drop --protocol windows");
  std::vector<int32_t> ids;
  if (file) ids = logits_file_tokens(a, model, *file, opt);
  else {
    const std::string text = read_text_file(a.required("text"));
    ids = opt.protocol == Protocol::LlamaCpp ? model.tokenizer().encode_with_bos(text) : model.tokenizer().encode(text);
  }
  const Tokenizer& tok = model.tokenizer();  // llama-perplexity puts BOS first only when the vocabulary adds it
  const EvalBatch batch = make_eval_batch(ids, tok.add_bos() ? tok.bos_id() : -1, opt);
  const double t0 = now_seconds();
  KldBase kb;
  const Share mine = eval_share(opt, batch.inputs.size(0));  // the chunks this rank runs
  if (file) kb.records = file->records.narrow(0, mine.begin, mine.size());
  else if (base && save) kb.records = scored_log_prob_records(*base, batch, opt);
  else if (base) kb.log_probs = scored_log_probs(*base, batch, opt);
  at::Tensor own;
  EvalResult r = evaluate_batch_against(model, batch, opt, kb, save && !base ? &own : nullptr);
  if (base) r.seconds = now_seconds() - t0;  // includes the base model's pass
  if (save) {
    LogitsFile out;
    out.n_ctx = int32_t(opt.ctx);
    out.n_vocab = int32_t(model.config().vocab);
    out.n_chunk = int32_t(batch.inputs.size(0));
    out.tokens.assign(ids.begin(), ids.begin() + int64_t(out.n_chunk) * out.n_ctx);
    out.records = base ? kb.records : own;
    write_logits_file(a.str("save-logits"), out);
  }
  return r;
}

}  // namespace

std::vector<FlagSpec> eval_flags() {
  std::vector<FlagSpec> f = kEvalFlags;
  auto dist = dist_flags();  // perplexity and KLD over ranks: each runs a share of the chunks
  f.insert(f.end(), dist.begin(), dist.end());
  return f;
}

int cmd_eval(int argc, char** argv) {
  Args a("eval", eval_flags(), argc, argv);
  if (a.help("perplexity, KL divergence and zero-shot multiple choice of a model")) return 0;
  apply_common(a);
  EvalOptions opt;
  opt.ctx = a.integer("ctx", 512);
  opt.chunks = a.integer("chunks", -1);
  opt.protocol = parse_protocol(a.str("protocol", "llamacpp"));
  opt.progress = !a.flag("quiet");
  SR_CHECK(opt.ctx >= 4 && opt.ctx <= (1 << 20), "--ctx must be between 4 and 1048576, got ", opt.ctx);
  SR_CHECK(a.integer("chunks", 1) >= 1, "--chunks must be positive");
  const bool mc = a.has("choices") || a.has("cloze");
  const bool ppl = a.has("text") || a.has("kld-base-logits");
  SR_CHECK(ppl || mc, "eval needs --text (perplexity), --kld-base-logits, --choices or --cloze (multiple choice)");
  const std::vector<ChoiceItem> items = mc ? choice_items(a) : std::vector<ChoiceItem>{};
  const std::unique_ptr<Comm> comm = connect_ranks(a);
  SR_CHECK(!comm || !mc, "multiple choice (--choices, --cloze) runs in one process; drop --world_size (perplexity "
           "and KLD run over ranks)");
  SR_CHECK(!comm || !a.has("save-logits"), "--save_logits runs in one process (the log-probs are not gathered over "
           "ranks); drop --world_size");
  const bool rank0 = !comm || comm->rank() == 0;  // the only one that prints
  opt.comm = comm.get();
  opt.progress = opt.progress && rank0;
  auto model = open_model(a, a.required("model"), true);
  map_large_blocks(sample_activation_bytes(model->config().n_heads, model->config().intermediate, opt.ctx));
  const int act_layers = install_activation_quantization(*model);
  if (act_layers > 0 && opt.progress)
    std::fprintf(stderr, "eval: activations of %d layers quantized as recorded with the model (quantization.json or config.json)\n", act_layers);
  std::unique_ptr<Model> base;
  if (a.has("kld-base")) {
    base = open_model(a, a.required("kld-base"), false);
    SR_CHECK(base->config().vocab == model->config().vocab, "--kld-base ", base->path(), ": the base model's vocabulary (",
             base->config().vocab, ") differs from the evaluated model's (", model->config().vocab, ")");
  }
  nlohmann::json j = {{"model", model->path()}};
  EvalResult r;
  if (ppl) {
    r = eval_text(a, *model, base.get(), opt);
    j.update(to_json(r));
    if (a.has("text")) j["text"] = a.str("text");
    j["ctx"] = opt.ctx;
    j["protocol"] = a.str("protocol", "llamacpp");
    if (base) j["kld_base"] = base->path();
    if (a.has("kld-base-logits")) j["kld_base_logits"] = a.str("kld-base-logits");
    if (a.has("save-logits")) j["saved_logits"] = a.str("save-logits");
  }
  if (mc) {
    ChoiceOptions co;
    co.progress = opt.progress;
    const ChoiceResult cr = evaluate_choices(*model, items, co);
    std::unique_ptr<ChoiceResult> br;
    if (base) br = std::make_unique<ChoiceResult>(evaluate_choices(*base, items, co));
    j["multiple_choice"] = to_json(cr, br.get());
    j["multiple_choice"]["source"] = a.has("choices") ? a.str("choices") : "cloze:" + a.str("cloze");
  }
  if (!rank0) return 0;  // every rank holds the same figures
  if (comm) j["ranks"] = comm->world();
  if (a.flag("json")) return print_json(j);
  std::printf("model      %s\n", model->path().c_str());
  if (ppl) {
    if (a.has("text")) std::printf("text       %s\n", a.str("text").c_str());
    std::printf("protocol   %s, ctx %lld, %lld chunks, %lld scored tokens\n", a.str("protocol", "llamacpp").c_str(),
                (long long)opt.ctx, (long long)r.chunks, (long long)r.tokens);
    std::printf("PPL        %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
    if (r.has_kld) {
      std::printf("KLD        %.6f +/- %.6f   (base %s)\n", r.kld, r.kld_stderr,
                  base ? base->path().c_str() : a.str("kld-base-logits").c_str());
      std::printf("same top   %.3f +/- %.3f %%\n", 100 * r.top1, 100 * r.top1_stderr);
    }
    if (a.has("save-logits")) std::printf("saved      %s (base log-probs)\n", a.str("save-logits").c_str());
    std::printf("time       %s (%.0f tokens/s)\n", format_duration(r.seconds).c_str(), r.tokens_per_second);
    if (r.has_kld) print_kld_stats(r.kld_stats);
  }
  if (mc) print_choices(j["multiple_choice"], j["multiple_choice"]["source"].get<std::string>());
  return 0;
}

}  // namespace sr::cli
