// signround eval: perplexity and KL divergence (see eval/perplexity.h for the protocols), and
// zero-shot multiple choice (eval/multiple_choice.h; story cloze from any text: eval/cloze.h).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/flag_values.h"
#include "common/error.h"
#include "common/progress.h"
#include "eval/cloze.h"
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
    {"json", false, "print one JSON object on stdout", ""},
    {"quiet", false, "no progress on stderr", ""},
};

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

}  // namespace

int cmd_eval(int argc, char** argv) {
  Args a("eval", kEvalFlags, argc, argv);
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
  SR_CHECK(a.has("text") || mc, "eval needs --text (perplexity), --choices or --cloze (multiple choice)");
  const std::vector<ChoiceItem> items = mc ? choice_items(a) : std::vector<ChoiceItem>{};
  auto model = open_model(a, a.required("model"), true);
  const int act_layers = install_activation_quantization(*model);
  if (act_layers > 0 && !a.flag("quiet"))
    std::fprintf(stderr, "eval: activations of %d layers quantized as recorded with the model (quantization.json or config.json)\n", act_layers);
  std::unique_ptr<Model> base;
  if (a.has("kld-base")) {
    base = open_model(a, a.required("kld-base"), false);
    SR_CHECK(base->config().vocab == model->config().vocab, "--kld-base ", base->path(), ": the base model's vocabulary (",
             base->config().vocab, ") differs from the evaluated model's (", model->config().vocab, ")");
  }
  nlohmann::json j = {{"model", model->path()}};
  EvalResult r;
  if (a.has("text")) {
    const std::string text = read_text_file(a.required("text"));
    r = evaluate_text(*model, text, opt, base.get());
    j.update(to_json(r));
    j["text"] = a.str("text");
    j["ctx"] = opt.ctx;
    j["protocol"] = a.str("protocol", "llamacpp");
    if (base) j["kld_base"] = base->path();
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
  if (a.flag("json")) return print_json(j);
  std::printf("model      %s\n", model->path().c_str());
  if (a.has("text")) {
    std::printf("text       %s\n", a.str("text").c_str());
    std::printf("protocol   %s, ctx %lld, %lld chunks, %lld scored tokens\n", a.str("protocol", "llamacpp").c_str(),
                (long long)opt.ctx, (long long)r.chunks, (long long)r.tokens);
    std::printf("PPL        %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
    if (r.has_kld) {
      std::printf("KLD        %.6f +/- %.6f   (base %s)\n", r.kld, r.kld_stderr, base->path().c_str());
      std::printf("same top   %.3f +/- %.3f %%\n", 100 * r.top1, 100 * r.top1_stderr);
    }
    std::printf("time       %s (%.0f tokens/s)\n", format_duration(r.seconds).c_str(), r.tokens_per_second);
  }
  if (mc) print_choices(j["multiple_choice"], j["multiple_choice"]["source"].get<std::string>());
  return 0;
}

}  // namespace sr::cli
