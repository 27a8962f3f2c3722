#!/usr/bin/env node
// llama-perplexity's protocol, run by a current llama.cpp (node-llama-cpp 3.21.1's prebuilt
// CPU binaries): an independent reader of the GGUF files signround writes.
//
//   node scripts/llama_node/perplexity.mjs --model FILE.gguf [--model FILE2.gguf ...]
//        --text FILE [--ctx 512] [--chunks K] [--threads N] [--base BASE.gguf]
//
// Prints one JSON object per --model on stdout, one a line, in the order given (one process
// for several files saves node-llama-cpp's start-up, about a second). Errors go to stderr
// with exit status 1 (2: usage).
//
// Protocol (llama.cpp tools/perplexity/perplexity.cpp, perplexity()): the whole text is
// tokenized by the model's own tokenizer with BOS first (when its vocabulary adds one); it
// is cut into n_chunk = min(K, floor(tokens / ctx)) chunks of ctx tokens, and at least
// 2 * ctx tokens are required; each chunk's first token is replaced by BOS; with
// first = ctx / 2, the logits at positions [first, ctx - 2] predict the tokens at
// [first + 1, ctx - 1], so ctx - 1 - first tokens are scored per chunk.
// PPL = exp(mean(NLL)) +/- PPL * sqrt((mean(NLL^2) - mean(NLL)^2) / (count - 1)), as
// llama-perplexity prints its final estimate.
// With --base, the same tokens go through the base model too and, at the same scored
// positions, KL(p_base || p_model) and the share of positions whose most likely token is
// the same are reported (llama-perplexity --kl-divergence's mean KLD and "same top p";
// computed here from both full distributions, not from its uint16-quantized base file).
//
// Probabilities come from LlamaContextSequence.controlledEvaluate with greedy sampling
// (temperature 0): the sampler chain then leaves every token's logit in place and the
// addon returns the full softmax (in fp32). Runs on the CPU only (gpu: false); the KV cache
// keeps llama.cpp's default F16 type and flash attention is off, as in llama-perplexity.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

// The pinned package (package-lock.json); its llama.cpp is what the results speak for.
const kNodeLlamaCppVersion = "3.21.1";

function usage(message) {
  if (message) process.stderr.write(`perplexity.mjs: ${message}\n`);
  process.stderr.write(
    "usage: node perplexity.mjs --model FILE.gguf [--model ...] --text FILE [--ctx N] [--chunks K] [--threads N] [--base FILE.gguf]\n");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { ctx: 512, chunks: -1, threads: 1, models: [], text: null, base: null };
  const integer = (flag, value, min) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) usage(`${flag} must be an integer >= ${min} (got '${value}')`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--help" || flag === "-h") usage();
    if (value === undefined) usage(`${flag} needs a value`);
    switch (flag) {
      case "--model": opts.models.push(value); break;
      case "--text": opts.text = value; break;
      case "--base": opts.base = value; break;
      case "--ctx": opts.ctx = integer(flag, value, 4); break;
      case "--chunks": opts.chunks = integer(flag, value, 1); break;
      case "--threads": opts.threads = integer(flag, value, 1); break;
      default: usage(`unknown flag ${flag}`);
    }
    i++;
  }
  if (opts.models.length === 0) usage("--model is required");
  if (!opts.text) usage("--text is required");
  return opts;
}

// The text as llama-perplexity tokenizes it: common_tokenize(ctx, text, add_special = true,
// parse_special = false). node-llama-cpp's tokenize adds no BOS, so it is put in front
// when the vocabulary asks for one (tokenizer.ggml.add_bos_token); a leading-space SPM
// vocabulary adds its space prefix either way.
function tokenizeLikePerplexity(model, text) {
  const tokens = model.tokenize(text, false);
  const addBos = model.tokens.shouldPrependBosToken && model.tokens.bos != null;
  if (addBos) tokens.unshift(model.tokens.bos);
  return { tokens, addBos };
}

// The chunk as the model sees it, asking for the full next-token distribution at every
// scored position.
function chunkInput(tokens, start, ctx, first, bos) {
  const input = new Array(ctx);
  for (let k = 0; k < ctx; k++) {
    const token = k === 0 && bos != null ? bos : tokens[start + k];
    const scored = k >= first && k <= ctx - 2;
    input[k] = scored ? [token, { generateNext: { probabilities: true, options: { temperature: 0 } } }] : token;
  }
  return input;
}

async function evaluateChunk(sequence, input, file, chunk) {
  try {
    await sequence.clearHistory();
    return await sequence.controlledEvaluate(input);
  } catch (err) {
    // e.g. a --base whose vocabulary lacks the model's token ids
    throw new Error(`${file}: llama.cpp failed to evaluate chunk ${chunk}: ${err?.message ?? err}`);
  }
}

function probabilitiesAt(outputs, k, file) {
  const probs = outputs[k]?.next?.probabilities;
  if (!probs) throw new Error(`${file}: llama.cpp returned no probabilities at position ${k}`);
  return probs;
}

// Smallest positive fp32 value: a probability that underflowed in the addon's fp32
// softmax counts as this instead of 0 (log 0 = -inf).
const kMinProb = 1.401298464324817e-45;

function meanAndStderr(sum, sum2, count) {
  const mean = sum / count;
  const variance = sum2 / count - mean * mean;
  return { mean, stderr: variance > 0 && count > 1 ? Math.sqrt(variance / (count - 1)) : 0 };
}

async function openModel(llama, path, ctx, threads) {
  let model;
  try {
    model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  } catch (err) {
    throw new Error(`${path}: llama.cpp cannot load it: ${err?.message ?? err}`);
  }
  const context = await model.createContext({
    contextSize: ctx, batchSize: ctx, sequences: 1, threads, flashAttention: false,
  });
  return { model, context, sequence: context.getSequence() };
}

// The base's next-token distributions at a chunk's scored positions: position k ->
// { probs: Float32Array over the vocabulary, top: its most likely token }. They are computed
// once for all --model files (which tokenize the text alike; the chunk's tokens are the key)
// while they fit in kBaseCacheFloats.
const kBaseCacheFloats = 64 * 1024 * 1024;

async function baseDistributions(base, input, chunk, first, opts) {
  const key = input.map((item) => (Array.isArray(item) ? item[0] : item)).join(",");
  const hit = base.cache.get(chunk);
  if (hit && hit.key === key) return hit.dists;
  const outputs = await evaluateChunk(base.sequence, input, opts.base, chunk);
  const dists = [];
  let floats = 0;
  for (let k = first; k <= input.length - 2; k++) {
    const map = probabilitiesAt(outputs, k, opts.base);
    const probs = new Float32Array(map.size);  // the addon's fp32 values, exactly
    for (const [token, p] of map) probs[token] = p;
    dists[k] = { probs, top: map.keys().next().value };
    floats += probs.length;
  }
  if (base.cachedFloats + floats <= kBaseCacheFloats) {
    base.cache.set(chunk, { key, dists });
    base.cachedFloats += floats;
  }
  return dists;
}

// llama-perplexity (and, with a base, its --kl-divergence) on one model.
async function measure(llama, modelPath, base, text, opts) {
  const target = await openModel(llama, modelPath, opts.ctx, opts.threads);
  const { tokens, addBos } = tokenizeLikePerplexity(target.model, text);
  const ctx = opts.ctx;
  if (tokens.length < 2 * ctx)
    throw new Error(`${opts.text}: ${tokens.length} tokens; llama-perplexity needs at least ${2 * ctx} for --ctx ${ctx}`);
  const nChunkMax = Math.floor(tokens.length / ctx);
  const nChunk = opts.chunks < 0 ? nChunkMax : Math.min(opts.chunks, nChunkMax);
  const first = Math.floor(ctx / 2);
  const bos = addBos ? target.model.tokens.bos : null;

  let count = 0, nll = 0, nll2 = 0;
  let kld = 0, kld2 = 0, sameTop = 0;
  for (let i = 0; i < nChunk; i++) {
    const start = i * ctx;
    const input = chunkInput(tokens, start, ctx, first, bos);
    const outputs = await evaluateChunk(target.sequence, input, modelPath, i);
    const baseDists = base ? await baseDistributions(base, input, i, first, opts) : null;
    for (let k = first; k <= ctx - 2; k++) {
      const probs = probabilitiesAt(outputs, k, modelPath);
      const next = tokens[start + k + 1];
      const logp = Math.log(Math.max(probs.get(next) ?? 0, kMinProb));
      nll -= logp;
      nll2 += logp * logp;
      count++;
      if (!base) continue;
      const b = baseDists[k];
      if (b.probs.length !== probs.size)
        throw new Error(`${opts.base}: a vocabulary of ${b.probs.length} tokens, ${modelPath} has ${probs.size}`);
      let kl = 0;
      for (let token = 0; token < b.probs.length; token++) {
        const pb = b.probs[token];
        if (pb > 0) kl += pb * (Math.log(pb) - Math.log(Math.max(probs.get(token) ?? 0, kMinProb)));
      }
      kld += kl;
      kld2 += kl * kl;
      // The map iterates from the most to the least likely token.
      if (b.top === probs.keys().next().value) sameTop++;
    }
  }
  await target.model.dispose();
  const n = meanAndStderr(nll, nll2, count);
  const ppl = Math.exp(n.mean);
  const result = {
    model: modelPath, text: opts.text,
    ctx, chunks: nChunk, text_tokens: tokens.length, tokens: count, add_bos: addBos,
    ppl, ppl_stderr: ppl * n.stderr, nll: n.mean, nll_stderr: n.stderr,
  };
  if (base) {
    const k = meanAndStderr(kld, kld2, count);
    const top = sameTop / count;
    Object.assign(result, {
      base: opts.base, kld: k.mean, kld_stderr: k.stderr,
      same_top: top, same_top_stderr: count > 1 ? Math.sqrt(top * (1 - top) / (count - 1)) : 0,
    });
  }
  return result;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const text = readFileSync(opts.text, "utf8");
  const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true,
    progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: opts.threads,
  });
  const base = opts.base ? await openModel(llama, opts.base, opts.ctx, opts.threads) : null;
  if (base) Object.assign(base, { cache: new Map(), cachedFloats: 0 });
  for (const modelPath of opts.models) {
    const t0 = performance.now();
    const result = await measure(llama, modelPath, base, text, opts);
    result.harness = `node-llama-cpp ${kNodeLlamaCppVersion}`;
    result.seconds = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify(result) + "\n");
  }
  await llama.dispose();
}

main().catch((err) => {
  process.stderr.write(`perplexity.mjs: ${err?.message ?? err}\n`);
  process.exit(1);
});
