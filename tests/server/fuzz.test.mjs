// Request-parser fuzz of `tandem serve`: >= FUZZ_CASES (10,000) malformed requests over raw TCP sockets,
// FUZZ_CONCURRENCY (16) at a time, from a seeded generator (FUZZ_SEED) so a failure can be replayed.
//
// Every case carries an invalid body (bad JSON, wrong types, huge numbers, deep nesting, invalid UTF-8,
// non-JSON under another content type, ...) and/or broken framing (request line, headers, Content-Length,
// chunked encoding), so whatever the server makes of the framing, the only right answers are a 4xx or,
// for framing errors, closing the connection. A few "tolerant" cases (semantically odd but well-typed
// values) may also succeed; they only must not get a 5xx. The server must stay alive, keep serving the
// same greedy text, and not leak file descriptors or threads.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import * as H from './lib/harness.mjs';

const CASES = Number(process.env.FUZZ_CASES || 10_000);
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY || 16);
const SEED = Number(process.env.FUZZ_SEED || 1234567);
const TIMEOUT_MS = 15_000;
const FLAGS = ['--max_new_tokens', '16', '--cache_lens', '2048', '--max_batch_size', '8', '--page_size', '16'];

const CHAT = '/v1/chat/completions';
const CMPL = '/v1/completions';
const enc = (s) => Buffer.from(s, 'utf8');

// ---- the raw client -------------------------------------------------------------------------------
// Resolves to { status, headers, body, closed, reset, timedOut, raw }.
function exchange(port, bytes, { halfClose = false, pieces = 1 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (extra) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...parse(buf), raw: buf, ...extra });
    };
    const timer = setTimeout(() => finish({ timedOut: true }), TIMEOUT_MS);
    sock.on('connect', () => {
      if (pieces <= 1) sock.write(bytes);
      else {
        // Split the request into several writes (exercises incremental parsing).
        const step = Math.max(1, Math.ceil(bytes.length / pieces));
        for (let i = 0; i < bytes.length; i += step) sock.write(bytes.subarray(i, i + step));
      }
      if (halfClose) sock.end();
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const p = parse(buf);
      if (p.complete) finish({});
    });
    sock.on('end', () => finish({ closed: true }));
    sock.on('close', () => finish({ closed: true }));
    sock.on('error', (e) => finish({ reset: true, error: e.code }));
  });
}

function parse(buf) {
  // Skip interim 1xx responses (100 Continue).
  while (/^HTTP\/1\.[01] 1\d\d /.test(buf.subarray(0, 16).toString('latin1'))) {
    const e = buf.indexOf('\r\n\r\n');
    if (e < 0) return { status: null, complete: false };
    buf = buf.subarray(e + 4);
  }
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return { status: null, complete: false };
  const head = buf.subarray(0, end).toString('latin1');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  const status = m ? Number(m[1]) : NaN;
  const headers = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const body = buf.subarray(end + 4);
  let complete = false;
  if (headers['content-length'] !== undefined) complete = body.length >= Number(headers['content-length']);
  else if (/chunked/i.test(headers['transfer-encoding'] || '')) complete = body.includes('0\r\n\r\n');
  return { status, headers, body: body.toString('utf8'), complete };
}

// ---- request builders ----------------------------------------------------------------------------
function httpRequest({ method = 'POST', path = CHAT, version = 'HTTP/1.1', headers, body = Buffer.alloc(0),
  contentLength = 'auto', contentType = 'application/json', extraHeaderLines = [] }) {
  const b = Buffer.isBuffer(body) ? body : enc(body);
  const lines = [`${method} ${path} ${version}`, 'Host: 127.0.0.1', 'Connection: close'];
  if (contentType !== null) lines.push(`Content-Type: ${contentType}`);
  if (contentLength === 'auto') lines.push(`Content-Length: ${b.length}`);
  else if (contentLength !== null) lines.push(`Content-Length: ${contentLength}`);
  for (const [k, v] of headers || []) lines.push(`${k}: ${v}`);
  lines.push(...extraHeaderLines);
  return Buffer.concat([enc(lines.join('\r\n') + '\r\n\r\n'), b]);
}

const MSGS = [{ role: 'user', content: 'hi' }];
const validChat = () => ({ model: H.MODEL_NAME, messages: MSGS, max_tokens: 1 });
const validCmpl = () => ({ model: H.MODEL_NAME, prompt: 'hi', max_tokens: 1 });

// Raw JSON snippets (text), since some cannot come out of JSON.stringify.
const HUGE_INTS = ['1e400', '-1e400', '99999999999999999999999', '-99999999999999999999999', '1e30', '18446744073709551616'];
const WRONG = {
  int: ['"5"', 'true', '[]', '{}', '1.5', '"x"', '[1]', ...HUGE_INTS],
  posint: ['-1', '-2147483649'],  // for fields that must be positive: max_tokens, n, top_logprobs
  num: ['"0.5"', 'true', '[]', '{}', '"x"', '[0.5]', '1e400', '-1e400'],
  string: ['5', 'true', '[]', '{}', '1.5'],
  bool: ['"true"', '1', '0', '[]', '{}', '"yes"'],
  stop: ['5', 'true', '{}', '[5]', '[[]]', '[null]', '[{"a":1}]', '["a", 5]'],
  stream_options: ['"x"', '5', '[]', 'true', '{"include_usage":"yes"}', '{"include_usage":5}'],
  messages: ['"x"', '5', '{}', 'true', 'null', '[]', '[5]', '["x"]', '[[]]', '[{}]', '[null]',
    '[{"role":5,"content":"hi"}]', '[{"role":"user","content":true}]', '[{"role":"user","content":{}}]',
    '[{"role":"user","content":[5]}]', '[{"role":"user","content":[{"type":"text"}]}]',
    '[{"role":"user","content":[{"type":"text","text":[]}]}]', '[{"role":"user","content":[{"type":5,"text":"a"}]}]',
    '[{"role":"user"}]', '[{"content":"hi"}]', '[{"role":[],"content":"hi"}]', '[{"role":"user","content":"hi","name":5}]',
    '[{"role":"nobody","content":"hi"}]', '[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]'],
  prompt: ['5', 'true', '{}', 'null', '[true]', '[1.5]', '[-1]', '[1e12]', '["a","b"]', '[null]', '[{}]', '[1,"a"]',
    '[]', '[[1],[2]]', '1e400', '[99999999999999999999999]', '[129280]'],
  tokens: ['"x"', '5', '{}', '[true]', '["a"]', '[-1]', '[1.5]', '[1e12]', 'null', '[null]', '[[1]]', '[129280]',
    '[99999999999999999999999]'],
  content: ['5', '[]', '{}', 'true', 'null', '[1,2]'],
};
const FIELDS_COMMON = {
  model: 'string', max_tokens: 'int+', max_completion_tokens: 'int+', temperature: 'num', top_p: 'num', top_k: 'int',
  min_p: 'num', presence_penalty: 'num', frequency_penalty: 'num', repetition_penalty: 'num', seed: 'int',
  stop: 'stop', stream: 'bool', stream_options: 'stream_options', n: 'int+', user: 'string',
};
const FIELDS = {
  [CHAT]: { ...FIELDS_COMMON, messages: 'messages', logprobs: 'bool', top_logprobs: 'int+' },
  [CMPL]: { ...FIELDS_COMMON, prompt: 'prompt', logprobs: 'int+' },  // (top_logprobs is a chat field)
};
function wrongValues(kind) {
  if (kind === 'int+') return [...WRONG.int, ...WRONG.posint];
  return WRONG[kind];
}

// A JSON object text with `field` set to the raw `valueText`; the rest valid.
function withField(base, field, valueText) {
  const obj = { ...base };
  delete obj[field];
  const rest = JSON.stringify(obj).slice(1, -1);
  return `{${rest}${rest ? ',' : ''}${JSON.stringify(field)}:${valueText}}`;
}

// ---- the generator ---------------------------------------------------------------------------------
// Each case: { name, bytes, halfClose?, pieces?, framing (a closed connection is an acceptable answer),
//              tolerant (2xx allowed), extraOk: [statuses besides 4xx], envelope (check the JSON error body) }
function makeCase(r, i) {
  const route = r.pick([CHAT, CHAT, CMPL]);
  const base = route === CHAT ? validChat() : validCmpl();
  const stream = r.next() < 0.3;
  if (stream) base.stream = true;
  const kind = r.int(0, 17);
  const body = (b, o = {}) => httpRequest({ path: route, body: b, ...o });
  switch (kind) {
    case 0: {  // random bytes
      const n = r.pick([1, 2, 8, 64, 512, 4096]);
      return { name: 'random-bytes', bytes: body(r.bytes(n)), envelope: false };
    }
    case 1: {  // truncated valid JSON
      const t = JSON.stringify({ ...base, temperature: 0.5, stop: ['x'], messages: route === CHAT ? MSGS : undefined });
      return { name: 'truncated-json', bytes: body(t.slice(0, r.int(0, t.length - 1))), envelope: true };
    }
    case 2: case 3: case 4: {  // a wrong type in one field
      const fields = FIELDS[route];
      const field = r.pick(Object.keys(fields));
      const v = r.pick(wrongValues(fields[field]));
      return { name: `wrong-type ${field}=${v}`, bytes: body(withField(base, field, v)), envelope: true };
    }
    case 5: {  // wrong top-level shapes
      const t = r.pick(['[]', '"x"', '5', 'null', 'true', '{}', '[{"messages":[]}]', '{"messages":{"role":"user"}}',
        '{"prompt":{}}', '{"":""}', '{"messages":[{"role":"user","content":"hi"}],"messages":5}']);
      return { name: `shape ${t}`, bytes: body(t), envelope: true };
    }
    case 6: {  // deep nesting
      const depth = r.pick([64, 1000, 10000, 100000, 400000, 3000000]);
      const open = r.pick(['[', '[', '{"a":']);
      const close = open === '[' ? ']' : '}';
      const closed = r.next() < 0.6;
      const nest = open.repeat(depth) + (closed ? '1' + close.repeat(depth) : '');
      const where = r.pick(['top', 'messages', 'stop', 'max_tokens', 'unknown', 'tools', 'message-extra', 'chat_template_kwargs']);
      let t;
      if (where === 'top') t = nest;
      else if (where === 'message-extra') {
        t = withField(base, route === CHAT ? 'messages' : 'prompt',
          route === CHAT ? `[{"role":"user","content":"hi","x_extra":${nest}}]` : `["hi",${nest}]`);
      } else {
        const f = where === 'unknown' ? 'x_extra' : where === 'messages' && route === CMPL ? 'prompt' : where;
        t = withField(base, f, nest);
      }
      // A deeply nested value where unknown content is ignored is valid: 2xx allowed there, never a crash.
      // (`tools` is outside the contract: whatever the server makes of it, it must not crash.)
      const tolerant = closed && (where === 'unknown' || where === 'tools' || (where === 'message-extra' && route === CHAT) ||
        (route === CMPL && where === 'chat_template_kwargs') ||
        (route === CHAT && where === 'chat_template_kwargs' && open !== '['));
      return { name: `nesting ${where} depth ${depth}${closed ? '' : ' unclosed'} ${open}`, bytes: body(t), tolerant, envelope: true };
    }
    case 7: {  // invalid UTF-8 / bad escapes inside strings
      const bad = r.pick([Buffer.from([0xff]), Buffer.from([0xc0, 0x80]), Buffer.from([0xed, 0xa0, 0x80]),
        Buffer.from([0xe4, 0xb8]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]), Buffer.from([0x80]),
        Buffer.from([0xf4, 0x90, 0x80, 0x80]), enc('\\ud800'), enc('\\udc00x'), enc('\\u12'), enc('\\x41'), enc('\\q'),
        Buffer.from([0x00]), enc('\n')]);
      const where = r.pick(['content', 'key', 'stop', 'model']);
      let pre;
      let post;
      if (route === CMPL && where === 'content') { pre = '{"max_tokens":1,"prompt":"a'; post = 'b"}'; }
      else if (where === 'content') { pre = '{"max_tokens":1,"messages":[{"role":"user","content":"a'; post = 'b"}]}'; }
      else if (where === 'key') { pre = `{"max_tokens":1,${route === CHAT ? '"messages":[{"role":"user","content":"hi"}]' : '"prompt":"hi"'},"k`; post = '":1}'; }
      else { pre = `{"max_tokens":1,${route === CHAT ? '"messages":[{"role":"user","content":"hi"}]' : '"prompt":"hi"'},"${where}":"a`; post = 'b"}'; }
      return { name: `bad-utf8/escape in ${where}: ${bad.toString('hex')}`, bytes: body(Buffer.concat([enc(pre), bad, enc(post)])), envelope: true };
    }
    case 8: {  // non-JSON bodies under other content types
      const [ct, b] = r.pick([
        ['application/x-www-form-urlencoded', 'messages=hi&max_tokens=1'],
        ['multipart/form-data; boundary=XyZ', '--XyZ\r\nContent-Disposition: form-data; name="messages"\r\n\r\nhi\r\n--XyZ--\r\n'],
        ['application/xml', '<messages><m role="user">hi</m></messages>'],
        ['text/plain', 'hello there'],
        ['application/octet-stream', r.bytes(32)],
        ['application/json; charset=utf-16', Buffer.from('{"prompt":"hi"}', 'utf16le')],
        [null, 'messages=hi'],
        ['', ''],
      ]);
      return { name: `content-type ${ct}`, bytes: body(b, { contentType: ct }), envelope: false };
    }
    case 9: {  // valid JSON under a wrong content type: lenient servers accept, strict ones answer 415
      const ct = r.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']);
      return { name: `valid json as ${ct}`, bytes: body(JSON.stringify(base), { contentType: ct }), tolerant: true, envelope: true };
    }
    case 10: {  // Content-Length larger than the body, then the client half-closes
      const t = JSON.stringify(base);
      const cl = r.pick([t.length + 1, t.length + 1000, 1e6, 1e12, 99999999999999999999, 2 ** 31, 2 ** 32 + 5]);
      return { name: `content-length ${cl} > body`, bytes: body(t, { contentLength: String(cl) }), halfClose: true, framing: true,
        extraOk: [413] };
    }
    case 11: {  // Content-Length smaller than the body (truncated JSON, then garbage as the next request)
      const t = JSON.stringify({ ...base, padding: 'p'.repeat(r.int(0, 100)) });
      return { name: 'content-length < body', bytes: body(t, { contentLength: String(r.int(0, t.length - 2)) }), framing: true };
    }
    case 12: {  // malformed Content-Length values, duplicates, and no length at all
      const t = JSON.stringify(base).slice(0, -1);  // the body is truncated JSON anyway
      const v = r.pick(['-1', 'abc', '1e3', '+5', '0x10', '', ' ', '12, 13', '18446744073709551617', '5 5', null]);
      if (r.next() < 0.25) {
        return { name: 'duplicate content-length', framing: true,
          bytes: body(t, { contentLength: String(t.length), extraHeaderLines: [`Content-Length: ${t.length + 3}`] }) };
      }
      return { name: `content-length "${v}"`, bytes: body(t, { contentLength: v }), framing: true, halfClose: v === null,
        extraOk: [411] };
    }
    case 13: {  // broken chunked encodings
      const t = JSON.stringify(base).slice(0, -1);
      const hex = t.length.toString(16);
      const v = r.pick([
        `${hex}\r\n${t}\r\n0\r\n\r\n`,                // well framed; truncated JSON inside
        `zz\r\n${t}\r\n0\r\n\r\n`,                     // bad size
        `ffffffffffffffffff\r\n${t}\r\n0\r\n\r\n`,     // overflowing size
        `-5\r\n${t}\r\n0\r\n\r\n`,                     // negative
        `${hex}\r\n${t}`,                              // no terminating chunk (half-close)
        `${hex}\r\n${t}XX\r\n0\r\n\r\n`,               // data longer than the size
        `1;ext=1\r\n{\r\n0\r\n\r\n`,                   // extension + a lone brace
        '0\r\n\r\n',                                   // empty body
        `${hex}\n${t}\n0\n\n`,                         // bare LF
      ]);
      const withCl = r.next() < 0.3;
      return { name: `chunked ${JSON.stringify(v.slice(0, 12))}${withCl ? ' +CL' : ''}`, framing: true, halfClose: true,
        extraOk: [411, 413, 501],
        bytes: httpRequest({ path: route, body: v, contentLength: withCl ? String(v.length) : null,
          headers: [['Transfer-Encoding', r.pick(['chunked', 'chunked', 'gzip, chunked', 'identity', 'chunked, chunked'])]] }) };
    }
    case 14: {  // broken request lines
      const t = '{"messages": [';
      const [line, extraOk] = r.pick([
        [`POST  ${route} HTTP/1.1`, []], [`POST ${route}`, []], [`POST ${route} HTTP/9.9`, [505]], [`post ${route} HTTP/1.1`, [405, 501]],
        [`BREW ${route} HTTP/1.1`, [405, 501]], [`POST v1/chat/completions HTTP/1.1`, []], [`POST ${route}%00 HTTP/1.1`, []],
        [`POST /${'a'.repeat(100000)} HTTP/1.1`, [414]], [`POST ${route} HTTP/1.1 extra`, []], ['', []], ['\x00\x01\x02', []],
        [`POST http://127.0.0.1${route} HTTP/1.1`, []], [`POST ${route}?x=%zz HTTP/1.1`, []], [`POST ${route}#frag HTTP/1.1`, []],
        [`POST ${route} HTTP/1.0`, []], [`PUT ${route} HTTP/1.1`, [405]], [`DELETE ${route} HTTP/1.1`, [405]],
        [`POST /v1/../v1/chat/completions HTTP/1.1`, []],
      ]);
      const raw = Buffer.concat([enc(`${line}\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${t.length}\r\n\r\n`), enc(t)]);
      return { name: `request line ${JSON.stringify(line.slice(0, 40))}`, bytes: raw, framing: true, extraOk: [405, 414, ...extraOk] };
    }
    case 15: {  // broken or hostile headers
      const t = JSON.stringify(base).slice(0, -1);
      const v = r.pick([
        ['NoColonHere'], ['Bad Name: x'], ['X-Nul: a\x00b'], ['X-Cr: a\rb'], [' Leading-Space: x'], ['X-Fold: a', '  folded'],
        [`X-Long: ${'v'.repeat(r.pick([9000, 100000]))}`], Array.from({ length: r.pick([200, 5000]) }, (_, k) => `X-H${k}: ${k}`),
        [`${r.bytes(20).toString('latin1').replace(/[\r\n]/g, '')}: x`], ['Content-Type: application/json', 'Content-Type: text/plain'],
        ['Authorization: Bearer \x01\x02'], ['Expect: 100-continue'], ['Expect: nonsense'], ['Connection: keep-alive, upgrade', 'Upgrade: websocket'],
        ['Host: a', 'Host: b'], [':'], ['X-Empty:'],
      ]);
      return { name: `headers ${JSON.stringify(v[0].slice(0, 30))}${v.length > 2 ? ` x${v.length}` : ''}`, framing: true,
        extraOk: [413, 417, 431], bytes: body(t, { extraHeaderLines: v }) };
    }
    case 16: {  // tokenize / detokenize bodies
      const tok = r.next() < 0.5;
      const v = r.pick(tok ? WRONG.content : WRONG.tokens);
      const t = tok ? `{"content":${v}}` : `{"tokens":${v}}`;
      return { name: `${tok ? '/tokenize' : '/detokenize'} ${v}`, envelope: true,
        bytes: httpRequest({ path: tok ? '/tokenize' : '/detokenize', body: t }) };
    }
    default: {  // semantically odd but well-typed values: 2xx allowed, never 5xx (max_tokens 1 keeps them quick)
      const odd = r.pick([['temperature', '1e308'], ['temperature', '100'], ['top_p', '0'], ['top_p', '2'], ['top_k', '-1'],
        ['top_k', '1000000000'], ['min_p', '1'], ['min_p', '-1'], ['presence_penalty', '-1e300'], ['frequency_penalty', '1e300'],
        ['repetition_penalty', '0'], ['repetition_penalty', '-1'], ['seed', '0'], ['seed', '-1'], ['seed', '9223372036854775807'],
        ['stop', '[""]'], ['stop', '""'], ['stop', `[${Array(64).fill('"x"').join(',')}]`], ['user', `"${'u'.repeat(10000)}"`],
        ['model', '"some-other-model"'], ['temperature', '-0.0'], ['logit_bias', '{"5":100}'], ['x_unknown', '[[[[1]]]]']]);
      return { name: `odd ${odd[0]}=${odd[1].slice(0, 30)}`, bytes: body(withField(base, odd[0], odd[1])), tolerant: true, envelope: true };
    }
  }
}

// The Ollama routes (/api/chat, /api/generate, /api/show): a fixed corpus of malformed bodies, run with the
// generated cases. Errors there are {"error": "message"} (ollamaEnvelope), not OpenAI's envelope.
const OCHAT = '/api/chat';
const OGEN = '/api/generate';
function ollamaCases(r) {
  const chat = { model: H.MODEL_NAME, messages: MSGS, stream: false, options: { num_predict: 1 } };
  const gen = { model: H.MODEL_NAME, prompt: 'hi', stream: false, options: { num_predict: 1 } };
  const cases = [];
  const add = (name, path, body, o = {}) => cases.push({ name: `ollama ${name}`, ollama: true, envelope: o.envelope ?? true,
    bytes: httpRequest({ path, body, ...o }), ...(o.tolerant ? { tolerant: true } : {}) });
  for (const [path, base] of [[OCHAT, chat], [OGEN, gen]]) {
    for (const n of [1, 8, 64, 512]) add(`random-bytes ${n}`, path, r.bytes(n), { envelope: false });
    const text = JSON.stringify(base);
    for (const cut of [1, 5, Math.floor(text.length / 2), text.length - 1]) add(`truncated ${cut}`, path, text.slice(0, cut));
    for (const v of ['[]', '5', '"x"', 'null', 'true', '[{}]']) add(`non-object ${v}`, path, v);
    add('deep nesting', path, withField(base, 'options', `${'['.repeat(100000)}${']'.repeat(100000)}`));
    add('deep nesting unclosed', path, withField(base, 'options', '{"a":'.repeat(5000)));
    for (const [f, v] of [['model', '5'], ['model', '"nope"'], ['stream', '"yes"'], ['options', '"x"'], ['options', '[1]'],
      // A format that compiles still needs more than num_predict 1 token: 400 as well.
      ['format', '"json"'], ['format', '{"type":"object"}'], ['format', '"yaml"'], ['format', '5'], ['format', '[]'],
      ['format', '{"type":"object","properties":{"a":{"pattern":"x"}}}'], ['format', '{"$ref":"#/nope"}'],
      ['format', '{"oneOf":[]}'], ['format', `${'{"anyOf":['.repeat(40)}{}${']}'.repeat(40)}`],
      ['tools', '[{"type":"function"}]'], ['think', '"high"'],
      ['keep_alive', '[]'], ['keep_alive', '{}']]) {
      add(`${f}=${v}`, path, withField(base, f, v));
    }
    for (const [k, v] of [['num_predict', '"5"'], ['num_predict', '0'], ['num_predict', '-3'], ['num_predict', '1.5'],
      ['num_predict', '99999999999999999999999'], ['temperature', '"0.5"'], ['temperature', '1e400'], ['temperature', '-1'],
      ['top_p', '[]'], ['top_k', '"4"'], ['seed', '1.5'], ['seed', '"1"'], ['stop', '5'], ['stop', '[5]'], ['stop', '{}'],
      ['mirostat', '2'], ['tfs_z', '0.5'], ['typical_p', '0.2'], ['penalize_newline', 'true'], ['unknown_option', '1'],
      ['repeat_penalty', '"x"'], ['repeat_last_n', '1.5']]) {
      add(`options.${k}=${v}`, path, withField(base, 'options', `{${JSON.stringify(k)}:${v}}`));
    }
    add('form content type', path, text, { contentType: 'application/x-www-form-urlencoded' });
    add('invalid utf-8', path, Buffer.concat([enc(text.slice(0, text.length - 3)), Buffer.from([0xff, 0xfe]), enc('"}')]));
  }
  for (const v of ['"x"', '5', '{}', '[5]', '[null]', '[{"role":5,"content":"hi"}]', '[{"role":"user","content":{}}]',
    '[{"role":"user","content":"hi","images":["aGk="]}]', '[{"role":"user","content":"hi","tool_calls":[{}]}]',
    '[{"role":"nobody","content":"hi"}]', '[{"role":"assistant","content":"hi","thinking":5}]']) {
    add(`messages=${v}`, OCHAT, withField(chat, 'messages', v));
  }
  for (const [f, v] of [['prompt', '5'], ['prompt', '["a"]'], ['system', '5'], ['raw', '"yes"'], ['template', '"{{ .Prompt }}"'],
    ['context', '[1,2]'], ['suffix', '"x"'], ['images', '["aGk="]']]) {
    add(`${f}=${v}`, OGEN, withField(gen, f, v));
  }
  for (const v of ['', '{', '[]', '{"model":5}', '{"name":[]}', '{}', '{"model":"nope"}']) add(`show ${v}`, '/api/show', v);
  return cases;
}

// Tool calling (OpenAI and Ollama chat): a fixed corpus of malformed tools, tool_choice, parallel_tool_calls,
// assistant tool_calls and tool messages (each must be a 4xx), plus random mutations of a valid tool conversation
// (a 4xx, or a 2xx where the mutation left it valid: tolerant), never a 5xx or a crash.
function toolCases(r) {
  const tool = { type: 'function', function: { name: 'get_weather', description: 'd', parameters: { type: 'object' } } };
  const call = { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } };
  const history = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: 'call_1', content: 'sunny' }];
  const chat = { model: H.MODEL_NAME, max_tokens: 1, messages: MSGS, tools: [tool] };
  const cases = [];
  const add = (name, body, o = {}) => cases.push({ name: `tools ${name}`, envelope: true, ollama: !!o.ollama,
    bytes: httpRequest({ path: o.ollama ? OCHAT : CHAT, body }), ...(o.tolerant ? { tolerant: true } : {}) });
  for (const v of ['{}', '"x"', '5', '[5]', '[null]', '[[]]', '[{}]', '[{"type":"function"}]', '[{"type":"code_interpreter"}]',
    '[{"type":"function","function":5}]', '[{"type":"function","function":{}}]', '[{"type":"function","function":{"name":5}}]',
    '[{"type":"function","function":{"name":""}}]', `[{"type":"function","function":{"name":"${'n'.repeat(65)}"}}]`,
    '[{"type":"function","function":{"name":"a b"}}]', '[{"type":"function","function":{"name":"a\\nb"}}]',
    '[{"type":"function","function":{"name":"f","parameters":"x"}}]', '[{"type":"function","function":{"name":"f","parameters":[]}}]',
    '[{"type":"function","function":{"name":"f","description":5}}]', '[{"type":"function","function":{"name":"f","strict":"yes"}}]',
    '[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]']) {
    add(`tools=${v.slice(0, 60)}`, withField(chat, 'tools', v));
    add(`ollama tools=${v.slice(0, 60)}`, withField({ ...chat, stream: false, max_tokens: undefined, options: { num_predict: 1 } },
      'tools', v), { ollama: true });
  }
  for (const v of ['"sometimes"', '5', 'true', '[]', '{}', '{"type":"function"}', '{"type":"function","function":{}}',
    '{"type":"function","function":{"name":5}}', '{"type":"function","function":{"name":"other"}}', '{"type":"x","function":{"name":"get_weather"}}',
    '"required"', '{"type":"function","function":{"name":"get_weather"}}']) {
    add(`tool_choice=${v}`, withField(chat, 'tool_choice', v));
  }
  // Forced calls (tool_choice required / named) over malformed or unsupported parameter schemas, and valid ones
  // whose shortest call does not fit max_tokens 1: all 4xx.
  for (const params of ['{"type":"object","properties":{"a":{"pattern":"x"}}}', '{"oneOf":[{}]}', '{"type":"nope"}',
    '{"properties":{"a":5}}', '{"required":"a"}', '{"$ref":"#/$defs/missing"}', '{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/a"}}}',
    '{"type":"object","required":["a"],"additionalProperties":false}', '{"enum":[]}', '{"type":"string","minLength":3,"maxLength":1}',
    `${'{"items":'.repeat(40)}{}${'}'.repeat(40)}`, '{"type":"object","properties":{"a":{"type":"array","items":{"enum":["x"]}}}}', '{}']) {
    const tools = `[{"type":"function","function":{"name":"get_weather","parameters":${params}}},{"type":"function","function":{"name":"g"}}]`;
    for (const choice of ['"required"', '{"type":"function","function":{"name":"get_weather"}}']) {
      add(`forced ${choice.slice(0, 12)} parameters=${params.slice(0, 40)}`, withField({ ...chat, tool_choice: JSON.parse(choice) }, 'tools', tools));
    }
  }
  add('forced with 40 tools', withField({ ...chat, tool_choice: 'required' }, 'tools', JSON.stringify(Array.from({ length: 40 },
    (_, i) => ({ type: 'function', function: { name: `f${i}` } })))));
  add('forced with a JSON response_format', withField({ ...chat, tool_choice: 'required' }, 'response_format', '{"type":"json_object"}'));
  add('tool_choice required without tools', withField({ ...chat, tools: undefined }, 'tool_choice', '"required"'));
  for (const v of ['"yes"', '1', '[]', '{}']) add(`parallel_tool_calls=${v}`, withField(chat, 'parallel_tool_calls', v));
  const msgs = (m) => withField(chat, 'messages', JSON.stringify(m));
  const bad = [
    ['tool first', [{ role: 'tool', tool_call_id: 'call_1', content: 'x' }]],
    ['tool after user', [{ role: 'user', content: 'hi' }, { role: 'tool', tool_call_id: 'call_1', content: 'x' }]],
    ['tool without id', [history[0], history[1], { role: 'tool', content: 'x' }]],
    ['tool with unknown id', [history[0], history[1], { role: 'tool', tool_call_id: 'call_9', content: 'x' }]],
    ['tool id not a string', [history[0], history[1], { role: 'tool', tool_call_id: 5, content: 'x' }]],
    ['tool without content', [history[0], history[1], { role: 'tool', tool_call_id: 'call_1' }]],
    ['tool after a user turn', [history[0], history[1], { role: 'user', content: 'u' }, history[2]]],
    ['call without id', [history[0], { role: 'assistant', tool_calls: [{ ...call, id: undefined }] }]],
    ['call with empty id', [history[0], { role: 'assistant', tool_calls: [{ ...call, id: '' }] }]],
    ['duplicate ids', [history[0], { role: 'assistant', tool_calls: [call, call] }]],
    ['arguments object', [history[0], { role: 'assistant', tool_calls: [{ ...call, function: { name: 'f', arguments: { a: 1 } } }] }]],
    ['arguments missing', [history[0], { role: 'assistant', tool_calls: [{ ...call, function: { name: 'f' } }] }]],
    ['name missing', [history[0], { role: 'assistant', tool_calls: [{ ...call, function: { arguments: '{}' } }] }]],
    ['name with a newline', [history[0], { role: 'assistant', tool_calls: [{ ...call, function: { name: 'a\nb', arguments: '{}' } }] }]],
    ['function not an object', [history[0], { role: 'assistant', tool_calls: [{ ...call, function: 'f' }] }]],
    ['type not function', [history[0], { role: 'assistant', tool_calls: [{ ...call, type: 'code' }] }]],
    ['call not an object', [history[0], { role: 'assistant', tool_calls: [5] }]],
    ['tool_calls not an array', [history[0], { role: 'assistant', tool_calls: {} }]],
    ['tool_calls on a user', [{ role: 'user', content: 'hi', tool_calls: [call] }]],
  ];
  for (const [name, m] of bad) add(`messages: ${name}`, msgs(m));
  for (const [name, m] of [['tool first', [{ role: 'tool', content: 'x' }]],
    ['tool_name unknown', [history[0], { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: {} } }] },
      { role: 'tool', tool_name: 'g', content: 'x' }]],
    ['call without function', [history[0], { role: 'assistant', content: '', tool_calls: [{}] }]],
    ['tool_calls a string', [history[0], { role: 'assistant', content: '', tool_calls: 'f' }]],
    ['tool_name not a string', [history[0], { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f' } }] },
      { role: 'tool', tool_name: 5, content: 'x' }]]]) {
    add(`ollama messages: ${name}`, JSON.stringify({ model: H.MODEL_NAME, stream: false, options: { num_predict: 1 }, messages: m }),
      { ollama: true });
  }
  // Random mutations of a valid tool conversation: one value replaced by something of another type or odd text.
  const odd = [5, -1, 1.5, true, null, '', 'x', [], {}, [1], { a: 1 }, '<｜tool▁calls▁begin｜>', '<tool_call>', '\u0000', 'a'.repeat(3000)];
  const paths = [['tools', 0, 'type'], ['tools', 0, 'function'], ['tools', 0, 'function', 'name'], ['tools', 0, 'function', 'parameters'],
    ['tools', 0, 'function', 'description'], ['messages', 1, 'tool_calls'], ['messages', 1, 'tool_calls', 0, 'id'],
    ['messages', 1, 'tool_calls', 0, 'function', 'name'], ['messages', 1, 'tool_calls', 0, 'function', 'arguments'],
    ['messages', 1, 'content'], ['messages', 2, 'tool_call_id'], ['messages', 2, 'content'], ['messages', 2, 'role'],
    ['tool_choice'], ['parallel_tool_calls']];
  for (let k = 0; k < 150; ++k) {
    const body = JSON.parse(JSON.stringify({ ...chat, messages: history, tool_choice: 'auto' }));
    const path = r.pick(paths);
    let o = body;
    for (const key of path.slice(0, -1)) o = o[key];
    const v = r.pick(odd);
    o[path[path.length - 1]] = v;
    add(`mutation ${path.join('.')}=${JSON.stringify(v).slice(0, 20)}`, JSON.stringify(body), { tolerant: true });
  }
  return cases;
}

// response_format on the OpenAI routes: a fixed corpus of malformed formats and schemas plus random schema-shaped
// objects built from supported, unsupported and mistyped keywords. With max_tokens 1 even a schema that compiles
// is refused (its shortest document needs more tokens), so every answer must be a 4xx with OpenAI's envelope.
function schemaCases(r) {
  const cases = [];
  const add = (name, format) => {
    const route = r.pick([CHAT, CHAT, CMPL]);
    const base = route === CHAT ? validChat() : validCmpl();
    cases.push({ name: `schema ${name}`, envelope: true, bytes: httpRequest({ path: route, body: withField(base, 'response_format', format) }) });
  };
  const js = (schema) => `{"type":"json_schema","json_schema":{"name":"x","schema":${schema}}}`;
  for (const f of ['5', '"json"', '[]', '{}', '{"type":5}', '{"type":"yaml"}', '{"type":"json_schema"}', '{"type":"json_schema","json_schema":5}',
    '{"type":"json_schema","json_schema":{"name":5}}', '{"type":"json_schema","json_schema":{"strict":"x","schema":{}}}',
    '{"type":"json_object"}']) add(`format ${f}`, f);
  for (const s of ['5', '"x"', 'null', '[]', 'true', 'false', '{"type":"nope"}', '{"type":[]}', '{"type":[5]}', '{"properties":[]}',
    '{"properties":{"a":5}}', '{"required":"a"}', '{"required":[5]}', '{"items":[{}]}', '{"items":5}', '{"minItems":-1}',
    '{"maxItems":1.5}', '{"minLength":"3"}', '{"maxLength":1e400}', '{"minLength":99999999999999999999}',
    '{"type":"array","minItems":1e15,"items":{"type":"string","minLength":1e15}}', '{"enum":5}', '{"enum":[]}', '{"anyOf":{}}',
    '{"anyOf":[]}', '{"anyOf":[5]}', '{"$ref":5}', '{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/a"}}}', '{"$ref":"#/%%"}',
    '{"$ref":"https://x/y"}', '{"$defs":5}', '{"additionalProperties":5}', '{"type":"object","required":["a"],"additionalProperties":false}',
    '{"type":"object","properties":{"a":{"$ref":"#"}},"required":["a"]}', '{"type":"string","minLength":5,"maxLength":1}',
    '{"pattern":"^a$"}', '{"format":"date"}', '{"oneOf":[{}]}', '{"allOf":[{}]}', '{"not":{}}', '{"if":{},"then":{}}',
    '{"minimum":1}', '{"uniqueItems":true}', '{"prefixItems":[{}]}', '{"patternProperties":{}}',
    `{"type":"object","properties":{${Array.from({ length: 100 }, (_, i) => `"p${i}":{}`).join(',')}}}`,
    `{"enum":[${Array.from({ length: 2000 }, (_, i) => `"${'v'.repeat(600)}${i}"`).join(',')}]}`,
    `${'{"items":'.repeat(60)}{}${'}'.repeat(60)}`, `${'{"anyOf":['.repeat(50)}{}${']}'.repeat(50)}`]) add(`json_schema ${s.slice(0, 40)}`, js(s));
  const keywords = ['type', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems', 'minLength',
    'maxLength', 'enum', 'const', 'anyOf', '$ref', '$defs', 'description', 'pattern', 'oneOf', 'minimum', 'x-custom'];
  const values = ['"object"', '"string"', '["integer","null"]', '5', '-1', '1.5', 'true', 'false', 'null', '"x"', '[]', '{}',
    '["a"]', '[{}]', '{"a":{}}', '"#"', '"#/$defs/a"'];
  const schema = (depth) => {
    const n = r.int(0, 4);
    const parts = [];
    for (let k = 0; k < n; ++k) {
      const key = r.pick(keywords);
      const v = depth < 3 && r.next() < 0.3 ? (key === 'anyOf' ? `[${schema(depth + 1)}]` : schema(depth + 1)) : r.pick(values);
      parts.push(`${JSON.stringify(key)}:${key === 'properties' && depth < 3 ? `{"a":${schema(depth + 1)}}` : v}`);
    }
    return `{${parts.join(',')}}`;
  };
  for (let i = 0; i < 300; ++i) add(`random ${i}`, js(schema(0)));
  return cases;
}

function ollamaEnvelopeProblems(json) {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return ['body is not a JSON object'];
  if (typeof json.error !== 'string' || json.error.length === 0) return ['no "error" string'];
  return Object.keys(json).length === 1 ? [] : ['keys besides "error"'];
}

function judge(c, res) {
  const s = res.status;
  if (res.timedOut) return `no answer within ${TIMEOUT_MS} ms (${res.status ? `got status ${s} but the body never completed` : 'connection left open'})`;
  if (s === null || s === undefined) {
    if (c.framing) return null;  // the server closed the connection on a framing error
    if (c.bytes.length > (1 << 20)) return null;  // refusing a large body by closing early is acceptable
    return `connection closed without a response (${res.error || 'eof'})`;
  }
  if (Number.isNaN(s)) return `unparsable status line: ${JSON.stringify(res.raw.subarray(0, 80).toString('latin1'))}`;
  if (s >= 500 && !(c.extraOk || []).includes(s)) return `HTTP ${s}: ${res.body.slice(0, 200)}`;
  if (s >= 200 && s < 300) return c.tolerant ? null : `accepted (HTTP ${s}): ${res.body.slice(0, 200)}`;
  if (s < 400 || s >= 600) return `HTTP ${s}`;
  if (c.envelope && s >= 400 && s < 500) {
    let json;
    try { json = JSON.parse(res.body); } catch { return `HTTP ${s} with a non-JSON body: ${res.body.slice(0, 120)}`; }
    const p = c.ollama ? ollamaEnvelopeProblems(json) : H.errorEnvelopeProblems(json);
    if (p.length) return `HTTP ${s} error body: ${p.join(', ')}: ${res.body.slice(0, 200)}`;
  }
  return null;
}

function fdCount(pid) { return readdirSync(`/proc/${pid}/fd`).length; }
function threadCount(pid) { return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]); }

describe('tandem serve request fuzz', { skip: H.SKIP, timeout: 285_000 }, () => {
  let srv;
  before(async () => { srv = await H.startServer(FLAGS); });
  after(async () => { await srv?.stop(); });

  test(`${CASES} malformed requests, ${CONCURRENCY} at a time: only 4xx or closed connections; the server survives`, async () => {
    const probe = { model: H.MODEL_NAME, prompt: H.referenceCases()[0].ids, max_tokens: 8, temperature: 0 };
    const before = await srv.post('/v1/completions', probe);
    assert.equal(before.status, 200, before.text);
    const fds0 = fdCount(srv.pid);
    const threads0 = threadCount(srv.pid);
    const rss0 = srv.rssKiB();

    const r = H.rng(SEED);
    const cases = Array.from({ length: CASES }, (_, i) => ({ i, ...makeCase(r, i) }));
    const ollama = ollamaCases(H.rng(SEED + 1));  // a separate generator: the generated cases stay as they were
    cases.push(...ollama.map((c, k) => ({ i: CASES + k, ...c })));
    const schemas = schemaCases(H.rng(SEED + 2));
    cases.push(...schemas.map((c, k) => ({ i: CASES + ollama.length + k, ...c })));
    const tools = toolCases(H.rng(SEED + 3));
    cases.push(...tools.map((c, k) => ({ i: CASES + ollama.length + schemas.length + k, ...c })));
    for (const c of cases) c.pieces = r.next() < 0.1 ? r.int(2, 5) : 1;
    const only = process.env.FUZZ_ONLY ? new Set(process.env.FUZZ_ONLY.split(',').map(Number)) : null;
    // FUZZ_ONLY=3,17 replays those cases; FUZZ_EXCLUDE=regex leaves out cases by name (for diagnosis only).
    const exclude = process.env.FUZZ_EXCLUDE ? new RegExp(process.env.FUZZ_EXCLUDE) : null;
    const todo = cases.filter((c) => (!only || only.has(c.i)) && !(exclude && exclude.test(c.name)));
    const failures = [];
    const tally = {};
    const started = [];  // cases run, for naming the culprit of a crash
    let next = 0;
    const t0 = Date.now();
    const worker = async () => {
      while (next < todo.length && srv.alive()) {
        const c = todo[next++];
        c.startedAt = Date.now();
        const res = await exchange(srv.port, c.bytes, { halfClose: c.halfClose, pieces: c.pieces });
        c.endedAt = Date.now();
        started.push(c);
        const verdict = judge(c, res);
        const k = res.status ?? (res.reset ? 'reset' : 'closed');
        tally[k] = (tally[k] || 0) + 1;
        if (verdict) {
          failures.push({ i: c.i, name: c.name, verdict,
            request: c.bytes.length > 300 ? `${c.bytes.subarray(0, 300).toString('latin1')}... (${c.bytes.length} bytes)` : c.bytes.toString('latin1') });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const secs = (Date.now() - t0) / 1000;
    const slow = {};
    for (const c of started) {
      const k = process.env.FUZZ_TIMING_FULL ? c.name.replace(/\d{3,}/g, "N") : c.name.split(" ")[0];
      slow[k] = (slow[k] || 0) + (c.endedAt - c.startedAt);
    }
    console.log(`# time per kind (s, summed over connections): ${Object.entries(slow).sort((a, b) => b[1] - a[1]).slice(0, 6)
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(', ')}`);
    console.log(`# ${next} of ${todo.length} cases in ${secs.toFixed(1)} s (seed ${SEED}); answers: ${JSON.stringify(tally)}`);
    if (!srv.alive()) {
      // Replay the cases around the crash one at a time, each on a fresh server, to name the culprit.
      // Suspects: cases started before the exit that were still open within 2 s of it, in start order.
      const died = srv.exitedAt;
      const suspects = [...todo.filter((c) => c.startedAt && c.startedAt <= died && !(c.endedAt < died - 2000))]
        .sort((a, b) => a.startedAt - b.startedAt).slice(0, 48);
      const culprits = [];
      for (const c of suspects) {
        if (culprits.length >= 2) break;
        const fresh = await H.startServer(FLAGS);
        try {
          await exchange(fresh.port, c.bytes, { halfClose: c.halfClose, pieces: c.pieces });
          await H.sleep(500);
          if (!fresh.alive()) culprits.push(`case ${c.i} (${c.name}) kills the server: ${JSON.stringify(fresh.exited)}\n` +
            `    request: ${JSON.stringify(c.bytes.length > 400 ? c.bytes.subarray(0, 400).toString('latin1') + `... (${c.bytes.length} bytes)` : c.bytes.toString('latin1'))}`);
        } finally {
          await fresh.stop();
        }
      }
      assert.fail(`the server died during the fuzz: ${JSON.stringify(srv.exited)} (FUZZ_SEED=${SEED})\n` +
        `replayed alone, of ${suspects.length} cases around the crash:\n${culprits.join('\n') || '(none crashes it alone)'}\n` +
        `--- server output ---\n${srv.log(1500)}`);
    }

    // Group failures by kind of case for the report.
    if (failures.length) {
      const byName = new Map();
      for (const f of failures) {
        const k = f.name.replace(/\d{3,}/g, 'N');
        if (!byName.has(k)) byName.set(k, { n: 0, first: f });
        byName.get(k).n += 1;
      }
      const lines = [...byName.entries()].map(([k, v]) =>
        `- ${k} (x${v.n}), case ${v.first.i}: ${v.first.verdict}\n    request: ${JSON.stringify(v.first.request)}`);
      assert.fail(`${failures.length} of ${cases.length} cases got a wrong answer (FUZZ_SEED=${SEED}):\n${lines.join('\n')}`);
    }

    // Still serving, same greedy text, nothing stuck or leaked.
    assert.equal((await srv.get('/health')).status, 200);
    const afterRes = await srv.post('/v1/completions', probe);
    assert.equal(afterRes.status, 200, afterRes.text);
    assert.equal(afterRes.json.choices[0].text, before.json.choices[0].text, 'greedy text changed after the fuzz');
    const { ok, m } = await srv.waitMetrics((x) => x.get('tandem_requests_running') === 0 && x.get('tandem_kv_pages_used') === 0
      && x.get('tandem_requests_waiting') === 0, 5000);
    assert.ok(ok, `after the fuzz: running ${m.get('tandem_requests_running')}, pages used ${m.get('tandem_kv_pages_used')}`);
    let fds = fdCount(srv.pid);
    for (let k = 0; k < 50 && fds > fds0 + 8; ++k) { await H.sleep(100); fds = fdCount(srv.pid); }
    assert.ok(fds <= fds0 + 8, `file descriptors: ${fds0} before, ${fds} after the fuzz (leak?)`);
    const threads = threadCount(srv.pid);
    assert.ok(threads <= threads0 + 32, `threads: ${threads0} before, ${threads} after the fuzz`);
    const rss = srv.rssKiB();
    console.log(`# fds ${fds0} -> ${fds}, threads ${threads0} -> ${threads}, RSS ${(rss0 / 1024).toFixed(1)} -> ${(rss / 1024).toFixed(1)} MiB`);
  });
});
