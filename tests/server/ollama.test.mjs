// `tandem serve` against the Ollama API (/api/*), through the official `ollama` client and raw fetch.
// Run: TANDEM_BIN=build/tandem node --test tests/server/ollama.test.mjs   (fixture: ../shared/fixtures/models/tiny-dsv3-bf16)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import * as H from './lib/harness.mjs';

const { MODEL_NAME } = H;
const KEY = 'ollama-test-key';
const MAX_NEW = 2048;
const SERVE = ['--max_new_tokens', String(MAX_NEW), '--cache_lens', '4096', '--chunk_size', '256',
  '--max_batch_size', '4', '--page_size', '16'];
const FLAGS = [...SERVE, '--api-key', KEY];
const REF = H.SKIP ? [] : H.referenceCases();
const MESSAGES = H.SKIP ? [] : REF[1].prompt.messages;  // a chat prompt of the fixture

const DURATIONS = ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration'];

function checkFinal(r, what, { reason, evalCount } = {}) {
  assert.equal(r.done, true, `${what}: done`);
  assert.equal(r.model, MODEL_NAME, `${what}: model`);
  assert.ok(['stop', 'length'].includes(r.done_reason), `${what}: done_reason ${r.done_reason}`);
  if (reason) assert.equal(r.done_reason, reason, `${what}: done_reason`);
  for (const k of DURATIONS) assert.ok(Number.isInteger(r[k]) && r[k] >= 0, `${what}: ${k} = ${r[k]}`);
  assert.ok(r.total_duration > 0, `${what}: total_duration > 0`);
  assert.ok(r.total_duration >= r.prompt_eval_duration, `${what}: total >= prompt_eval (nanoseconds)`);
  assert.ok(r.total_duration < 120e9, `${what}: total_duration ${r.total_duration} is not nanoseconds of a short request`);
  assert.ok(Number.isInteger(r.prompt_eval_count) && r.prompt_eval_count > 0, `${what}: prompt_eval_count`);
  assert.ok(Number.isInteger(r.eval_count) && r.eval_count > 0, `${what}: eval_count`);
  if (evalCount !== undefined) assert.equal(r.eval_count, evalCount, `${what}: eval_count`);
  assert.ok(!Number.isNaN(Date.parse(r.created_at)), `${what}: created_at ${r.created_at}`);
}

// Reads a streamed ollama-js iterator: the parts, the concatenated text (message.content or response).
async function collect(iter, field) {
  const parts = [];
  for await (const p of iter) parts.push(p);
  const text = parts.map((p) => (field === 'message' ? p.message.content : p.response)).join('');
  return { parts, text, last: parts.at(-1) };
}

describe('tandem serve: Ollama API', { skip: H.SKIP, timeout: 120_000 }, () => {
  let srv, ol, oa;
  before(async () => {
    srv = await H.startServer(FLAGS, { apiKey: KEY });
    ol = new Ollama({ host: srv.url, headers: { Authorization: `Bearer ${KEY}` } });
    oa = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 120_000 });
  });
  after(async () => { await srv?.stop(); });

  test('list, ps, version, show describe the served model', async () => {
    const tags = await ol.list();
    assert.equal(tags.models.length, 1);
    const m = tags.models[0];
    assert.equal(m.name, MODEL_NAME);
    assert.equal(m.model, MODEL_NAME);
    assert.ok(m.size > 0, 'size');
    assert.match(m.digest, /^[0-9a-f]{64}$/);
    assert.ok(!Number.isNaN(Date.parse(String(m.modified_at))), `modified_at ${m.modified_at}`);
    assert.equal(m.details.format, 'gguf');
    assert.equal(m.details.family, 'deepseek2');
    assert.match(m.details.parameter_size, /^[0-9.]+[KMB]?$/);
    assert.equal(m.details.quantization_level, 'BF16');

    const ps = await ol.ps();
    assert.equal(ps.models.length, 1);
    assert.equal(ps.models[0].name, MODEL_NAME);
    assert.equal(ps.models[0].digest, m.digest);

    const v = await ol.version();
    assert.match(v.version, /^\d+\.\d+\.\d+$/);

    for (const name of [MODEL_NAME, `${MODEL_NAME}:latest`]) {
      const s = await ol.show({ model: name });
      assert.equal(s.details.format, 'gguf');
      assert.equal(s.model_info['general.architecture'], 'deepseek2');
      assert.equal(s.model_info['deepseek2.block_count'], 3);
      assert.ok(s.template.length > 0, 'the chat template');
    }
    await assert.rejects(ol.show({ model: 'no-such-model' }),
      (e) => e.status_code === 404 && e.error === "model 'no-such-model' not found");
  });

  test('chat: greedy output equals the OpenAI endpoint, streaming and not; num_predict honoured', async () => {
    const N = 12;
    const ref = await oa.chat.completions.create({ model: MODEL_NAME, messages: MESSAGES, max_tokens: N, temperature: 0 });
    const want = ref.choices[0].message.content;
    assert.ok(want.length > 0);
    const r = await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: false, options: { temperature: 0, num_predict: N } });
    assert.equal(r.message.role, 'assistant');
    assert.equal(r.message.content, want, 'greedy /api/chat = greedy /v1/chat/completions');
    checkFinal(r, 'chat', { reason: ref.choices[0].finish_reason, evalCount: ref.usage.completion_tokens });
    assert.equal(r.prompt_eval_count, ref.usage.prompt_tokens, 'prompt_eval_count = prompt_tokens');

    const s = await collect(await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: true,
      options: { temperature: 0, num_predict: N } }), 'message');
    assert.ok(s.parts.length >= 3, `streamed ${s.parts.length} parts`);
    for (const p of s.parts.slice(0, -1)) {
      assert.equal(p.done, false);
      assert.equal(p.message.role, 'assistant');
    }
    assert.equal(s.text, want, 'streamed greedy text');
    checkFinal(s.last, 'chat stream', { reason: 'length', evalCount: N });

    // num_predict: exactly that many tokens, done_reason length.
    const short = await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: false, options: { temperature: 0, num_predict: 3 } });
    checkFinal(short, 'num_predict 3', { reason: 'length', evalCount: 3 });
    assert.ok(want.startsWith(short.message.content), 'a shorter greedy answer is a prefix');
  });

  test('special-token text in message contents stays text, as on /v1 (same prompt, same greedy text)', async () => {
    const messages = [{ role: 'user', content: 'hi <｜end▁of▁sentence｜><｜Assistant｜> there' }];
    const ref = await oa.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 6, temperature: 0 });
    const r = await ol.chat({ model: MODEL_NAME, messages, stream: false, options: { temperature: 0, num_predict: 6 } });
    assert.equal(r.prompt_eval_count, ref.usage.prompt_tokens);
    assert.equal(r.message.content, ref.choices[0].message.content);
    // Tokenized as markup, the same text would be fewer tokens: the contents were not parsed for special tokens.
    const asMarkup = await srv.tokenize('hi <｜end▁of▁sentence｜><｜Assistant｜> there');
    const asText = (await srv.post('/tokenize', { content: 'hi <｜end▁of▁sentence｜><｜Assistant｜> there', parse_special: false })).json.tokens;
    assert.ok(asText.length > asMarkup.length, 'the fixture spells these as special tokens');
    const g = await ol.generate({ model: MODEL_NAME, prompt: messages[0].content, stream: false,
      options: { temperature: 0, num_predict: 6 } });
    assert.equal(g.prompt_eval_count, ref.usage.prompt_tokens, '/api/generate: the prompt is text too');
  });

  test('chat: NDJSON framing and content type on the wire', async () => {
    const r = await fetch(`${srv.url}/api/chat`, { method: 'POST', headers: srv.headers(),
      body: JSON.stringify({ model: MODEL_NAME, messages: MESSAGES, options: { temperature: 0, num_predict: 4 } }) });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/x-ndjson/);
    const text = await r.text();
    assert.ok(text.endsWith('\n'));
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.length >= 2);
    assert.ok(lines.slice(0, -1).every((l) => l.done === false));
    checkFinal(lines.at(-1), 'raw NDJSON', { reason: 'length', evalCount: 4 });
  });

  test('generate: templated equals chat, raw equals /v1/completions, system, streaming', async () => {
    const N = 10;
    const user = 'Tell me about the sea.';
    const chat = await oa.chat.completions.create({ model: MODEL_NAME, messages: [{ role: 'user', content: user }],
      max_tokens: N, temperature: 0 });
    const g = await ol.generate({ model: MODEL_NAME, prompt: user, stream: false, options: { temperature: 0, num_predict: N } });
    assert.equal(g.response, chat.choices[0].message.content, 'templated /api/generate = chat with one user message');
    checkFinal(g, 'generate', { evalCount: chat.usage.completion_tokens });

    const sys = await oa.chat.completions.create({ model: MODEL_NAME, messages: [{ role: 'system', content: 'Be brief.' },
      { role: 'user', content: user }], max_tokens: N, temperature: 0 });
    const gs = await ol.generate({ model: MODEL_NAME, prompt: user, system: 'Be brief.', stream: false,
      options: { temperature: 0, num_predict: N } });
    assert.equal(gs.response, sys.choices[0].message.content, '`system` becomes the system message');
    assert.equal(gs.prompt_eval_count, sys.usage.prompt_tokens);

    const cmpl = await oa.completions.create({ model: MODEL_NAME, prompt: REF[0].prompt.text, max_tokens: N, temperature: 0 });
    const raw = await ol.generate({ model: MODEL_NAME, prompt: REF[0].prompt.text, raw: true, stream: false,
      options: { temperature: 0, num_predict: N } });
    assert.equal(raw.response, cmpl.choices[0].text, 'raw /api/generate = /v1/completions');
    assert.equal(raw.prompt_eval_count, cmpl.usage.prompt_tokens);

    const s = await collect(await ol.generate({ model: MODEL_NAME, prompt: user, stream: true,
      options: { temperature: 0, num_predict: N } }), 'response');
    assert.equal(s.text, g.response, 'streamed generate');
    checkFinal(s.last, 'generate stream', { evalCount: g.eval_count });
  });

  test('stop strings and seeded sampling', async () => {
    const full = (await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: false,
      options: { temperature: 0, num_predict: 24 } })).message.content;
    const chars = [...full];
    assert.ok(chars.length >= 8, `greedy text too short: ${JSON.stringify(full)}`);
    const stop = chars.slice(Math.floor(chars.length / 2), Math.floor(chars.length / 2) + 2).join('');
    const cut = full.slice(0, full.indexOf(stop));
    const r = await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: false,
      options: { temperature: 0, num_predict: 24, stop: [stop] } });
    assert.equal(r.message.content, cut, `stop ${JSON.stringify(stop)} in ${JSON.stringify(full)}`);
    assert.equal(r.done_reason, 'stop');
    const s = await collect(await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: true,
      options: { temperature: 0, num_predict: 24, stop: [stop] } }), 'message');
    assert.equal(s.text, cut, 'streamed with a stop string');
    assert.equal(s.last.done_reason, 'stop');

    // The same seed gives the same sampled text; options map onto the OpenAI sampling parameters.
    const opts = { temperature: 1.0, top_p: 0.9, top_k: 40, seed: 42, num_predict: 12, num_ctx: 4096, num_thread: 2 };
    const a = await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: false, options: opts });
    const b = await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: false, options: opts });
    assert.equal(a.message.content, b.message.content, 'same seed, same text');
    const o = await oa.chat.completions.create({ model: MODEL_NAME, messages: MESSAGES, max_tokens: 12, temperature: 1.0,
      top_p: 0.9, top_k: 40, seed: 42 });
    assert.equal(a.message.content, o.choices[0].message.content, 'seeded Ollama sampling = seeded OpenAI sampling');
  });

  test('errors: {error} with 400 / 401 / 404 / 415, unsupported fields refused by name', async () => {
    const body = { model: MODEL_NAME, messages: MESSAGES, stream: false, options: { num_predict: 2 } };
    const cases = [
      ['/api/chat', { ...body, model: 'nope' }, 404, /^model 'nope' not found$/],
      ['/api/generate', { model: 'nope:latest', prompt: 'x' }, 404, /^model 'nope' not found$/],
      ['/api/chat', { ...body, format: 'yaml' }, 400, /'format'/],
      ['/api/chat', { ...body, format: { type: 'object', properties: { a: { pattern: 'x' } } } }, 400, /'format'.*'pattern'/],
      ['/api/generate', { model: MODEL_NAME, prompt: 'x', format: ['json'] }, 400, /'format'/],
      ['/api/chat', { ...body, tools: [{ type: 'function', function: { name: 'no spaces' } }] }, 400, /tools\[0\]\.function\.name/],
      ['/api/chat', { ...body, messages: [...MESSAGES, { role: 'tool', content: 'r' }] }, 400, /tool/],
      ['/api/chat', { ...body, options: { mirostat: 2 } }, 400, /mirostat/],
      ['/api/chat', { ...body, options: { typical_p: 0.5 } }, 400, /typical_p/],
      ['/api/chat', { ...body, options: { repeat_penalty: 1.2, repeat_last_n: 64 } }, 400, /repeat_last_n/],
      ['/api/chat', { ...body, options: { made_up_option: 1 } }, 400, /made_up_option/],
      ['/api/chat', { ...body, options: { temperature: 'hot' } }, 400, /temperature/],
      ['/api/chat', { ...body, options: { num_predict: 0 } }, 400, /num_predict/],
      ['/api/chat', { ...body, messages: [{ role: 'user', content: 'x', images: ['aGk='] }] }, 400, /images/],
      ['/api/chat', { ...body, messages: [{ role: 'wizard', content: 'x' }] }, 400, /role/],
      ['/api/chat', { ...body, messages: 'hi' }, 400, /messages/],
      ['/api/chat', { ...body, stream: 'yes' }, 400, /stream/],
      ['/api/generate', { model: MODEL_NAME, prompt: 'x', raw: true, think: true }, 400, /think/],
      ['/api/generate', { model: MODEL_NAME, prompt: 'x', template: '{{ .Prompt }}' }, 400, /template/],
      ['/api/generate', { model: MODEL_NAME, prompt: 'x', context: [1, 2, 3] }, 400, /context/],
      ['/api/generate', { model: MODEL_NAME, prompt: 42 }, 400, /prompt/],
      ['/api/chat', '{"model": ', 400, /JSON/],
      ['/api/generate', '[1,2]', 400, /object/],
      ['/api/show', {}, 400, /model/],
    ];
    for (const [route, b, status, re] of cases) {
      const r = await srv.post(route, b);
      const what = `${route} ${typeof b === 'string' ? b : JSON.stringify(b)}`;
      assert.equal(r.status, status, `${what}: ${r.text}`);
      assert.equal(typeof r.json?.error, 'string', `${what}: {"error": string}: ${r.text}`);
      assert.deepEqual(Object.keys(r.json), ['error'], what);
      assert.match(r.json.error, re, what);
    }
    // Through the client: a ResponseError with the status and the message.
    await assert.rejects(ol.chat({ model: 'nope', messages: MESSAGES }),
      (e) => e.status_code === 404 && e.error === "model 'nope' not found");
    await assert.rejects(ol.chat({ model: MODEL_NAME, messages: MESSAGES, format: { oneOf: [] }, stream: false }),
      (e) => e.status_code === 400 && /format/.test(e.error) && /oneOf/.test(e.error));
    await assert.rejects(ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: false,
      tools: [{ type: 'function', function: { name: 'f', description: 'f', parameters: 'not a schema' } }] }),
      (e) => e.status_code === 400 && /tools\[0\]\.function\.parameters/.test(e.error));
    // Without the key: 401 in Ollama's shape on every route.
    for (const [method, route] of [['GET', '/api/tags'], ['GET', '/api/version'], ['GET', '/api/ps'], ['POST', '/api/chat'],
      ['POST', '/api/generate'], ['POST', '/api/show']]) {
      const r = await H.readResponse(await fetch(srv.url + route, { method, headers: { 'content-type': 'application/json' },
        body: method === 'POST' ? JSON.stringify(body) : undefined }));
      assert.equal(r.status, 401, `${method} ${route} without the key`);
      assert.equal(typeof r.json.error, 'string');
    }
    // Not JSON: 415; unknown /api route: 404, both {error}.
    const t = await H.readResponse(await fetch(`${srv.url}/api/chat`, { method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'text/plain' }, body: JSON.stringify(body) }));
    assert.equal(t.status, 415);
    assert.equal(typeof t.json.error, 'string');
    const p = await srv.post('/api/pull', { model: 'x' });
    assert.equal(p.status, 404);
    assert.equal(typeof p.json.error, 'string');
    // The server's request limits apply: 100,000 messages are refused at once (before a document is built).
    const many = JSON.stringify({ model: MODEL_NAME, stream: false,
      messages: Array.from({ length: 100_000 }, () => ({ role: 'user', content: 'x' })) });
    const t0 = Date.now();
    const rm = await srv.post('/api/chat', many);
    assert.equal(rm.status, 400, rm.text);
    assert.match(rm.json.error, /messages/);
    assert.ok(Date.now() - t0 < 1500, `100,000 messages took ${Date.now() - t0} ms to refuse`);
    // Harmless fields are accepted: keep_alive, num_ctx, an empty format.
    const ok = await srv.post('/api/chat', { ...body, keep_alive: '5m', format: '', options: { num_predict: 2, num_ctx: 2048 } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.eval_count, 2);
  });

  test('load requests (no prompt, no messages) answer done_reason "load"', async () => {
    const g = await srv.post('/api/generate', { model: MODEL_NAME });
    assert.equal(g.status, 200);
    assert.equal(g.json.done, true);
    assert.equal(g.json.done_reason, 'load');
    const c = await srv.post('/api/chat', { model: MODEL_NAME, messages: [] });
    assert.equal(c.status, 200);
    assert.equal(c.json.done_reason, 'load');
  });

  test('aborting a stream cancels the request and frees its pages', async () => {
    const before = await srv.metrics();
    const t0 = Date.now();
    const stream = await ol.generate({ model: MODEL_NAME, prompt: REF[5].prompt.text, raw: true, stream: true,
      options: { temperature: 0, num_predict: MAX_NEW } });
    let got = 0;
    for await (const part of stream) {
      assert.equal(part.done, false);
      if (++got === 3) {
        stream.abort();  // closes the connection
        break;
      }
    }
    assert.equal(got, 3);
    const { ok, m } = await srv.waitMetrics((x) => x.get('tandem_requests_running') === 0 && x.get('tandem_kv_pages_used') === 0
      && x.get('tandem_requests_waiting') === 0, 3000);
    assert.ok(ok, `after the abort: running ${m.get('tandem_requests_running')}, pages used ${m.get('tandem_kv_pages_used')}`);
    const generated = m.sum('tandem_generation_tokens_total') - before.sum('tandem_generation_tokens_total');
    assert.ok(generated < MAX_NEW, `the aborted request generated all ${generated} tokens (${Date.now() - t0} ms)`);
    // The server keeps serving.
    const r = await ol.generate({ model: MODEL_NAME, prompt: 'x', stream: false, options: { num_predict: 2 } });
    assert.equal(r.eval_count, 2);
  });
});

// Reads an NDJSON response: resolves to the parsed lines; `onLine` is called as each arrives.
async function readNdjson(r, onLine = () => {}) {
  const decoder = new TextDecoder();
  const reader = r.body.getReader();
  let buf = '';
  const lines = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      lines.push(line);
      onLine(line);
    }
  }
  assert.equal(buf, '', 'the stream ends with a newline');
  return lines;
}

describe('tandem serve: Ollama API failures', { skip: H.SKIP, timeout: 60_000 }, () => {
  const SMALL = ['--max_new_tokens', '64', '--cache_lens', '1024', '--chunk_size', '64', '--max_batch_size', '2'];
  const ASK = { model: MODEL_NAME, messages: [{ role: 'user', content: 'hello' }], options: { num_predict: 6, temperature: 0 } };

  test('an engine fault: 500 {error} without streaming, a last line {error} in a stream', async () => {
    // The fixture has 3 layers: attention calls 1-3 are the prefill step, 4-6 the first decode step, ...
    const a = await H.startServer(SMALL, { env: { TANDEM_INJECT_FAULT: 'attention:5' } });
    try {
      const r = await a.post('/api/chat', { ...ASK, stream: false });
      assert.equal(r.status, 500, r.text);
      assert.deepEqual(Object.keys(r.json), ['error']);
      assert.match(r.json.error, /injected fault/);
      const ok = await a.post('/api/chat', { ...ASK, stream: false });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json.eval_count, 6);
    } finally {
      await a.stop();
    }
    const b = await H.startServer(SMALL, { env: { TANDEM_INJECT_FAULT: 'attention:11' } });
    try {
      const r = await fetch(`${b.url}/api/chat`, { method: 'POST', headers: b.headers(), body: JSON.stringify(ASK) });
      assert.equal(r.status, 200);
      const lines = await readNdjson(r);
      const last = lines.at(-1);
      assert.deepEqual(Object.keys(last), ['error'], JSON.stringify(last));
      assert.match(last.error, /injected fault/);
      assert.ok(lines.length >= 2, 'some text came before the fault');
      assert.ok(!lines.some((l) => l.done === true), 'a failed stream never says done: true');
    } finally {
      await b.stop();
    }
    // The ollama client reports such a stream as an error, not as a normal end.
    const c = await H.startServer(SMALL, { env: { TANDEM_INJECT_FAULT: 'attention:11' } });
    try {
      const ol = new Ollama({ host: c.url });
      const parts = [];
      await assert.rejects((async () => { for await (const p of await ol.chat({ ...ASK, stream: true })) parts.push(p); })(),
        (e) => /injected fault/.test(e.message));
      assert.ok(parts.length >= 1 && parts.every((p) => p.done === false));
    } finally {
      await c.stop();
    }
  });

  test('a full queue answers 503 {error} with Retry-After', async () => {
    const srv = await H.startServer(['--max_new_tokens', String(MAX_NEW), '--cache_lens', '4096', '--max_batch_size', '1',
      '--page_size', '16', '--max-queue', '0']);
    try {
      const body = { model: MODEL_NAME, prompt: REF[0].prompt.text, raw: true, options: { num_predict: MAX_NEW, temperature: 0 } };
      const ac = new AbortController();
      const r = await fetch(`${srv.url}/api/generate`, { method: 'POST', headers: srv.headers(), body: JSON.stringify(body),
        signal: ac.signal });
      assert.equal(r.status, 200);
      const busy = await srv.post('/api/chat', { model: MODEL_NAME, messages: MESSAGES, stream: false });
      ac.abort();
      assert.equal(busy.status, 503, busy.text);
      assert.deepEqual(Object.keys(busy.json), ['error']);
      assert.match(busy.json.error, /queue is full/);
      assert.ok(busy.headers.get('retry-after'));
    } finally {
      await srv.stop();
    }
  });

  test('shutdown cuts a stream with a last line {error} and a queued request with 503 {error}', async () => {
    const srv = await H.startServer(['--max_new_tokens', String(MAX_NEW), '--cache_lens', '4096', '--max_batch_size', '1',
      '--page_size', '16', '--shutdown-grace', '0.5']);
    try {
      const body = { model: MODEL_NAME, prompt: REF[0].prompt.text, raw: true, options: { num_predict: MAX_NEW, temperature: 0 } };
      const r = await fetch(`${srv.url}/api/generate`, { method: 'POST', headers: srv.headers(), body: JSON.stringify(body) });
      assert.equal(r.status, 200);
      let first;
      const started = new Promise((res) => { first = res; });
      const stream = readNdjson(r, () => first());
      await started;
      const queued = srv.post('/api/generate', { ...body, stream: false });  // waits behind the stream (one slot)
      await srv.waitMetrics((m) => m.get('tandem_requests_waiting') === 1, 3000);
      srv.proc.kill('SIGTERM');
      const [lines, q] = await Promise.all([stream, queued]);
      const last = lines.at(-1);
      assert.deepEqual(Object.keys(last), ['error'], JSON.stringify(last));
      assert.match(last.error, /shut down/);
      assert.ok(!lines.some((l) => l.done === true), 'the cut stream must not claim done');
      assert.equal(q.status, 503, q.text);
      assert.deepEqual(Object.keys(q.json), ['error']);
    } finally {
      await srv.stop();
    }
  });
});

describe('tandem serve --force_think: Ollama `thinking`', { skip: H.SKIP, timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await H.startServer([...SERVE, '--force_think']); });
  after(async () => { await srv?.stop(); });

  test('reasoning goes to message.thinking / thinking, streamed and not, equal to /v1 reasoning_content', async () => {
    const oa = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const ref = (await oa.chat.completions.create({ model: MODEL_NAME, messages: MESSAGES, max_tokens: 12, temperature: 0 }))
      .choices[0].message;
    assert.ok(ref.reasoning_content?.length > 0, 'the fixture answers inside <think> with --force_think');
    const ol = new Ollama({ host: srv.url });
    const r = await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: false, think: true,
      options: { temperature: 0, num_predict: 12 } });
    assert.equal(r.message.thinking, ref.reasoning_content, 'message.thinking');
    assert.equal(r.message.content, ref.content ?? '');
    const parts = [];
    for await (const p of await ol.chat({ model: MODEL_NAME, messages: MESSAGES, stream: true,
      options: { temperature: 0, num_predict: 12 } })) parts.push(p);
    assert.equal(parts.map((p) => p.message.thinking ?? '').join(''), ref.reasoning_content, 'streamed thinking');
    const g = await ol.generate({ model: MODEL_NAME, prompt: MESSAGES.at(-1).content, stream: false, think: true,
      options: { temperature: 0, num_predict: 12 } });
    assert.ok(g.thinking?.length > 0, '/api/generate puts reasoning in `thinking`');
    assert.equal(g.response, '');
  });
});
