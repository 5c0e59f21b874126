// Random test strings for tokenizer comparison: mixed scripts, digit runs, whitespace runs, emoji sequences,
// punctuation, contractions, code, combining marks, and added-token text (whole and broken).
//
// Deliberately NOT generated (documented differences of the JavaScript reference, not of the tokenizers):
// - U+0085 (NEL) and U+FEFF (BOM): JavaScript's \s excludes U+0085 and includes U+FEFF; the Hugging Face
//   tokenizers (Oniguruma) and tandem use Unicode White_Space, which is the reverse. The reference is wrong there.
// - U+017F (long s): HF's `(?i:'s|'t|...)` matches "'ſ" by Unicode case folding (so does tandem's PCRE2); the
//   JavaScript port rewrites the group as `'[sS]|...` and does not.
// - Characters assigned after Unicode 13: node's ICU knows newer Unicode versions than PCRE2 10.42 (Unicode 14)
//   and the HF library, so only long-assigned characters are used.
"use strict";

function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const chars = (s) => Array.from(s);
const range = (lo, hi) => ({ lo, hi });

const WORDS = [
  "the", "of", "and", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be", "at", "by", "this",
  "hello", "world", "model", "token", "expert", "router", "inference", "attention", "tokenizer", "DeepSeek",
  "Qwen", "transformer", "KTransformers", "GPU", "CPU", "API", "JSON", "iPhone", "McDonald", "naïve", "café",
  "über", "straße", "résumé", "jalapeño", "Zürich", "København", "São", "Paulo", "coöperate", "ALLCAPS", "camelCase",
  "snake_case", "kebab-case", "x86_64", "a", "I", "OK",
];
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D",
  "'Re", "'lL", "\u2019s", "\u2019ll", "'", "''", "'x", "'st", "'dd"];
const ACCENTED = chars("àáâãäåçèéêëìíîïñòóôõöùúûüýÿßøæœÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝŒÆØčšžćđłńśźżğışőű");
const GREEK = chars("αβγδεζηθικλμνξοπρστυφχψωάέήίόύώΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩς");
const CJK_PUNCT = chars("、。「」『』【】〈〉《》・ー〜！？；：（）［］｛｝");
const UNICODE_PUNCT = chars("“”‘’«»—–…•·¡¿‰′″§¶†‡‹›‚„");
const SYMBOLS = chars("€£¥₹₩©®™°±×÷∑∫√∞≈≠≤≥→←↑↓⇒∀∃∈∉∂∇♠♣♥♦★☆♪♫☃☀✓✗‹›⌘⌥");
const ASCII_PUNCT = chars("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
const SPACES = [" ", " ", " ", " ", "\t", "\n", "\n", "\r", "\r\n", "\u000b", "\u000c", "\u00a0", "\u1680",
  "\u2000", "\u2002", "\u2003", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"];
const ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\u180e", "\u200e", "\u200f"];
const EMOJI = chars("😀😂🤣😍🤔😎😭😡👍👎👏🙏💪🔥✨🎉🚀🌍🌈🍕🍺⚽🏀🎵💡📈🔒🧠🤖🦀🐍🐧❤💯✅❌⭐☕");
const SKIN = ["\u{1f3fb}", "\u{1f3fc}", "\u{1f3fd}", "\u{1f3fe}", "\u{1f3ff}"];
const ZWJ_SEQUENCES = ["👨\u200d👩\u200d👧\u200d👦", "👩\u200d💻", "🏳\ufe0f\u200d🌈", "👁\ufe0f\u200d🗨\ufe0f",
  "🧑\u200d🤝\u200d🧑", "👨🏽\u200d🚀", "❤\ufe0f\u200d🔥", "🐻\u200d❄\ufe0f"];
const CODE = ["def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {", "#include <vector>",
  "https://github.com/kvcache-ai/ktransformers?x=1&y=2#frag", "user@example.com", "<div class=\"x\">a &amp; b</div>",
  "{\"role\": \"user\", \"content\": [1, 2.5e-3, null]}", "SELECT * FROM t WHERE a >= 10;", "x += y[i]*z;",
  "console.log(`${a}`);", "\\n\\t\\\\", "C:\\Users\\me", "fn main() -> Result<(), Box<dyn Error>> {}"];
const ADDED_TOKENS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
  "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|vision_start|>", "<tool_response>",
  "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜tool▁calls▁begin｜>",
  "<｜tool▁sep｜>", "<｜fim▁hole｜>", "<|EOT|>", "<｜place▁holder▁no▁1｜>", "<｜place▁holder▁no▁12｜>",
  "<｜▁pad▁｜>"];
const BROKEN_TOKENS = ["<|im_start", "im_end|>", "<|im_end|", "<think", "think>", "</think", "<｜User",
  "｜Assistant｜>", "<<|im_end|>>", "<|<|im_start|>|>", "<｜place▁holder▁no▁", "<|", "|>", "<｜", "｜>", "▁"];
const COMBINING = range(0x300, 0x36f);
// NFC changes these (singletons, canonical reordering, Hangul composition), which exercises the Qwen normalizer.
const NFC_SENSITIVE = ["e\u0301", "a\u0323\u0302", "a\u0302\u0323", "\u2126", "\u212a", "\u212b", "\uf900",
  "\ufa0d", "\u0340", "\u0374", "\u037e", "\u0387", "\u1100\u1161", "\u1100\u1161\u11a8", "\u2000", "\u2001",
  "o\u0308\u0304", "\u0915\u093c", "\u0627\u0653"];

const SCRIPTS = {
  cyrillic: [range(0x410, 0x44f), range(0x401, 0x401), range(0x451, 0x451)],
  arabic: [range(0x621, 0x63a), range(0x641, 0x64a)],
  arabicMarks: [range(0x64b, 0x652)],
  hebrew: [range(0x5d0, 0x5ea)],
  devanagari: [range(0x915, 0x939)],
  devanagariSigns: [range(0x93e, 0x94d)],
  thai: [range(0xe01, 0xe2e)],
  thaiMarks: [range(0xe31, 0xe31), range(0xe34, 0xe3a), range(0xe47, 0xe4e)],
  cjk: [range(0x4e00, 0x9fa5)],
  cjkOutside: [range(0x9fa6, 0x9fef), range(0x3400, 0x4db5), range(0x20000, 0x2a6d6), range(0xf900, 0xfa6d)],
  hiragana: [range(0x3041, 0x3096)],
  katakana: [range(0x30a1, 0x30fa), range(0x30fc, 0x30fc)],
  halfwidthKatakana: [range(0xff66, 0xff9d)],
  hangul: [range(0xac00, 0xd7a3)],
  fullwidth: [range(0xff01, 0xff5e)],
  astralLetters: [range(0x10330, 0x1034a), range(0x1d400, 0x1d433), range(0x10400, 0x1044f)],
  otherDigits: [range(0xff10, 0xff19), range(0x660, 0x669), range(0x966, 0x96f), range(0xe50, 0xe59),
    range(0x2160, 0x216f), range(0x2460, 0x2473), range(0xb2, 0xb3), range(0xbc, 0xbe), range(0x1d7ce, 0x1d7ff)],
  c0controls: [range(0x0, 0x8), range(0xe, 0x1f), range(0x7f, 0x84), range(0x86, 0x9f)],
};

function makeGenerator(seed) {
  const rnd = mulberry32(seed);
  const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = (arr) => arr[Math.floor(rnd() * arr.length)];
  const fromRanges = (ranges) => {
    const r = pick(ranges);
    return String.fromCodePoint(int(r.lo, r.hi));
  };
  const run = (ranges, lo, hi) => {
    let s = "";
    for (let n = int(lo, hi); n > 0; --n) s += fromRanges(ranges);
    return s;
  };
  const latinWord = () => {
    let w = "";
    for (let n = int(1, 9); n > 0; --n) w += rnd() < 0.1 ? pick(ACCENTED) : String.fromCharCode(int(97, 122));
    const r = rnd();
    if (r < 0.2) return w[0].toUpperCase() + w.slice(1);
    if (r < 0.3) return w.toUpperCase();
    return w;
  };
  const repeat = (f, lo, hi, sep = "") => {
    const parts = [];
    for (let n = int(lo, hi); n > 0; --n) parts.push(f());
    return parts.join(sep);
  };

  const segments = [
    [10, () => pick(WORDS)],
    [8, () => repeat(() => (rnd() < 0.5 ? pick(WORDS) : latinWord()), 2, 8, " ")],
    [6, () => pick(WORDS) + pick(CONTRACTIONS)],
    [4, () => repeat(() => run(SCRIPTS.cyrillic, 1, 9), 1, 4, " ")],
    [3, () => repeat(() => repeat(() => pick(GREEK), 1, 8), 1, 3, " ")],
    [3, () => repeat(() => run(SCRIPTS.arabic, 2, 7) + (rnd() < 0.3 ? run(SCRIPTS.arabicMarks, 1, 2) : ""), 1, 4, " ")],
    [2, () => repeat(() => run(SCRIPTS.hebrew, 2, 6), 1, 3, " ")],
    [3, () => repeat(() => fromRanges(SCRIPTS.devanagari) + (rnd() < 0.6 ? fromRanges(SCRIPTS.devanagariSigns) : ""), 2, 8)],
    [2, () => repeat(() => fromRanges(SCRIPTS.thai) + (rnd() < 0.3 ? fromRanges(SCRIPTS.thaiMarks) : ""), 2, 10)],
    [8, () => run(SCRIPTS.cjk, 1, 12)],
    [3, () => run(SCRIPTS.cjkOutside, 1, 4)],
    [4, () => run(SCRIPTS.hiragana, 1, 6) + run(SCRIPTS.katakana, 0, 6)],
    [1, () => run(SCRIPTS.halfwidthKatakana, 1, 5)],
    [3, () => run(SCRIPTS.hangul, 1, 6)],
    [2, () => run(SCRIPTS.fullwidth, 1, 6)],
    [2, () => run(SCRIPTS.astralLetters, 1, 5)],
    [8, () => repeat(() => String.fromCharCode(int(48, 57)), 1, rnd() < 0.2 ? 25 : 6)],
    [3, () => run(SCRIPTS.otherDigits, 1, 5)],
    [3, () => String(int(0, 99999)) + pick([".", ",", ":", "-", "/", "e-", "%"]) + String(int(0, 9999))],
    [8, () => repeat(() => pick(SPACES), 1, 8)],
    [1, () => " ".repeat(int(10, 40)) + (rnd() < 0.5 ? "x" : "\n")],
    [2, () => pick(ZERO_WIDTH)],
    [5, () => repeat(() => pick(EMOJI) + (rnd() < 0.2 ? pick(SKIN) : "") + (rnd() < 0.1 ? "\ufe0f" : ""), 1, 4)],
    [2, () => pick(ZWJ_SEQUENCES)],
    [1, () => String.fromCodePoint(int(0x1f1e6, 0x1f1ff), int(0x1f1e6, 0x1f1ff))],
    [1, () => String(int(0, 9)) + "\ufe0f\u20e3"],
    [6, () => repeat(() => pick(ASCII_PUNCT), 1, 4)],
    [3, () => repeat(() => pick(UNICODE_PUNCT), 1, 3)],
    [2, () => repeat(() => pick(CJK_PUNCT), 1, 3)],
    [3, () => repeat(() => pick(SYMBOLS), 1, 3)],
    [3, () => pick(CODE)],
    [5, () => pick(ADDED_TOKENS)],
    [3, () => pick(BROKEN_TOKENS)],
    [3, () => latinWord() + run([COMBINING], 1, 3)],
    [3, () => pick(NFC_SENSITIVE)],
    [1, () => run(SCRIPTS.c0controls, 1, 3)],
  ];
  const total = segments.reduce((s, [w]) => s + w, 0);
  const segment = () => {
    let r = rnd() * total;
    for (const [w, f] of segments) {
      if ((r -= w) < 0) return f();
    }
    return segments[0][1]();
  };
  const joiner = () => {
    const r = rnd();
    if (r < 0.45) return "";
    if (r < 0.85) return " ";
    return pick(rnd() < 0.5 ? SPACES : ASCII_PUNCT);
  };

  return function next() {
    if (rnd() < 0.005) return "";
    let s = segment();
    for (let n = int(0, 9); n > 0; --n) s += joiner() + segment();
    return s;
  };
}

module.exports = { makeGenerator };
