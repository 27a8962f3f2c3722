// node encode.mjs tokenizer.json texts.json out.json: ids of each text, no special tokens added.
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "fs";
const tj = JSON.parse(fs.readFileSync(process.argv[2]));
for (const k of ["normalizer", "post_processor", "decoder", "truncation", "padding"]) if (!(k in tj)) tj[k] = null;
const texts = JSON.parse(fs.readFileSync(process.argv[3]));
const tok = new Tokenizer(tj, {});
fs.writeFileSync(process.argv[4], JSON.stringify(texts.map((t) => tok.encode(t, { add_special_tokens: false }).ids)));
