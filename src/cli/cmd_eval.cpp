// signround eval: perplexity and KL divergence (see eval/perplexity.h for the protocols).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/progress.h"
#include "eval/perplexity.h"
#include "io/text.h"
#include "model/model.h"
#include "quant/act_hooks.h"

namespace sr::cli {

namespace {

std::vector<FlagSpec> eval_flags() {
  auto f = common_flags();
  f.push_back({"model", true, "model to evaluate: HF folder, .gguf or llama2.c .bin", ""});
  f.push_back({"text", true, "UTF-8 text file to score", ""});
  f.push_back({"ctx", true, "tokens per chunk", "512"});
  f.push_back({"chunks", true, "number of chunks to score", "all"});
  f.push_back({"protocol", true, "llamacpp (llama-perplexity's) or windows", "llamacpp"});
  f.push_back({"kld-base", true, "base model: also report KL divergence and same-top-token share", ""});
  f.push_back({"json", false, "print one JSON object on stdout", ""});
  f.push_back({"quiet", false, "no progress on stderr", ""});
  return f;
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
  }
  return j;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  const auto specs = eval_flags();
  Args a("eval", specs, argc, argv, 2);
  if (a.flag("help")) {
    std::cout << Args::usage("eval", "perplexity and KL divergence of a model on a text", specs);
    return 0;
  }
  apply_common(a);
  EvalOptions opt;
  opt.ctx = a.integer("ctx", 512);
  opt.chunks = a.integer("chunks", -1);
  opt.protocol = parse_protocol(a.str("protocol", "llamacpp"));
  opt.progress = !a.flag("quiet");
  SR_CHECK(opt.ctx >= 4 && opt.ctx <= (1 << 20), "--ctx must be between 4 and 1048576, got ", opt.ctx);
  SR_CHECK(a.integer("chunks", 1) >= 1, "--chunks must be positive");
  OpenOptions oo;
  oo.tokenizer_path = a.str("tokenizer");
  auto model = Model::open(a.required("model"), oo);
  const int act_layers = install_activation_quantization(*model);
  if (act_layers > 0 && !a.flag("quiet"))
    std::fprintf(stderr, "eval: activations of %d layers quantized as recorded with the model (quantization.json or config.json)\n", act_layers);
  std::unique_ptr<Model> base;
  if (a.has("kld-base")) base = Model::open(a.required("kld-base"), oo);
  const std::string text = read_text_file(a.required("text"));
  EvalResult r = evaluate_text(*model, text, opt, base.get());
  nlohmann::json j = to_json(r);
  j["model"] = model->path();
  j["text"] = a.str("text");
  j["ctx"] = opt.ctx;
  j["protocol"] = a.str("protocol", "llamacpp");
  if (base) j["kld_base"] = base->path();
  if (a.flag("json")) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("model      %s\n", model->path().c_str());
  std::printf("text       %s\n", a.str("text").c_str());
  std::printf("protocol   %s, ctx %lld, %lld chunks, %lld scored tokens\n", a.str("protocol", "llamacpp").c_str(),
              (long long)opt.ctx, (long long)r.chunks, (long long)r.tokens);
  std::printf("PPL        %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
  if (r.has_kld) {
    std::printf("KLD        %.6f +/- %.6f   (base %s)\n", r.kld, r.kld_stderr, base->path().c_str());
    std::printf("same top   %.3f +/- %.3f %%\n", 100 * r.top1, 100 * r.top1_stderr);
  }
  std::printf("time       %s (%.0f tokens/s)\n", format_duration(r.seconds).c_str(), r.tokens_per_second);
  return 0;
}

}  // namespace sr::cli
