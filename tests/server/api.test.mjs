// `tandem serve` against the OpenAI API contract, through the official `openai` client and raw fetch.
// Run: TANDEM_BIN=build/tandem node --test tests/server/api.test.mjs   (fixture: ../shared/fixtures/models/tiny-dsv3-bf16)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import * as H from './lib/harness.mjs';

const { MODEL_NAME, EOS_ID } = H;
const MAX_NEW = 2048;
const BASE = { '--max_new_tokens': String(MAX_NEW), '--cache_lens': '4096', '--chunk_size': '256',
  '--max_batch_size': '4', '--page_size': '16' };
// Server flags: BASE with overrides; a null value is a bare switch.
const flags = (over = {}) => Object.entries({ ...BASE, ...over }).flatMap(([k, v]) => (v === null ? [k] : [k, v]));
const BASE_FLAGS = flags();
const REF = H.SKIP ? [] : H.referenceCases();
const refChat = (i) => REF[i].prompt.messages;  // ref cases 1 and 2 are chat prompts

function client(srv, apiKey = 'no-key') {
  return new OpenAI({ baseURL: `${srv.url}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });
}

// The text generation shows for `ids`: control tokens (DeepSeek's <｜...｜>) add none, as with vLLM's
// skip_special_tokens, while /detokenize spells them out.
async function visibleText(srv, ids) {
  const kept = [];
  for (const id of ids) if (!/^<｜[^｜]+｜>$/.test(await srv.detokenize([id]))) kept.push(id);
  return srv.detokenize(kept);
}

const nowSec = () => Math.floor(Date.now() / 1000);

function checkUsage(usage, maxTokens, finish, what) {
  assert.ok(usage, `${what}: usage missing`);
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(usage[k]) && usage[k] >= 0, `${what}: usage.${k} = ${usage[k]}`);
  }
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, `${what}: total_tokens`);
  assert.ok(usage.prompt_tokens > 0, `${what}: prompt_tokens > 0`);
  assert.ok(usage.completion_tokens <= maxTokens, `${what}: completion_tokens ${usage.completion_tokens} > max_tokens ${maxTokens}`);
  if (finish === 'length') {
    assert.equal(usage.completion_tokens, maxTokens, `${what}: finish_reason "length" but completion_tokens != max_tokens`);
  }
}

function checkChatCompletion(r, maxTokens, what) {
  assert.equal(typeof r.id, 'string', `${what}: id`);
  assert.ok(r.id.length > 0);
  assert.equal(r.object, 'chat.completion', `${what}: object`);
  assert.ok(Number.isInteger(r.created) && Math.abs(r.created - nowSec()) < 600, `${what}: created = ${r.created}`);
  assert.equal(r.model, MODEL_NAME, `${what}: model`);
  assert.equal(r.choices.length, 1, `${what}: one choice`);
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(['stop', 'length'].includes(c.finish_reason), `${what}: finish_reason ${c.finish_reason}`);
  assert.ok('logprobs' in c, `${what}: choices[0].logprobs missing (null expected when not asked)`);
  checkUsage(r.usage, maxTokens, c.finish_reason, what);
}

// Collects an openai-client chat stream: { id, content, finish, usage, chunks, roleSeen }.
async function collectChatStream(stream, what) {
  const out = { content: '', reasoning: '', finish: null, usage: null, chunks: [], contentChunks: 0 };
  for await (const chunk of stream) out.chunks.push(chunk);
  assert.ok(out.chunks.length > 0, `${what}: no chunks`);
  const id = out.chunks[0].id;
  out.id = id;
  out.chunks.forEach((ch, i) => {
    assert.equal(ch.object, 'chat.completion.chunk', `${what}: chunk ${i} object`);
    assert.equal(ch.id, id, `${what}: chunk ${i} id differs from the first chunk's`);
    assert.equal(ch.model, MODEL_NAME, `${what}: chunk ${i} model`);
    assert.ok(Number.isInteger(ch.created), `${what}: chunk ${i} created`);
    if (ch.usage) {
      assert.equal(out.usage, null, `${what}: two chunks carry usage`);
      out.usage = ch.usage;
      assert.deepEqual(ch.choices, [], `${what}: the usage chunk must have empty choices`);
      assert.equal(i, out.chunks.length - 1, `${what}: the usage chunk must be the last before [DONE]`);
      return;
    }
    assert.equal(ch.choices.length, 1, `${what}: chunk ${i} must have one choice`);
    const c = ch.choices[0];
    assert.equal(c.index, 0);
    assert.equal(out.finish, null, `${what}: chunk ${i} after the chunk with finish_reason`);
    if (c.delta.role !== undefined) assert.equal(c.delta.role, 'assistant');
    if (typeof c.delta.content === 'string' && c.delta.content.length > 0) {
      out.content += c.delta.content;
      out.contentChunks += 1;
    }
    if (typeof c.delta.reasoning_content === 'string') out.reasoning += c.delta.reasoning_content;
    if (c.finish_reason !== null && c.finish_reason !== undefined) {
      assert.ok(['stop', 'length'].includes(c.finish_reason), `${what}: finish_reason ${c.finish_reason}`);
      out.finish = c.finish_reason;
    }
  });
  assert.equal(out.chunks[0].choices[0]?.delta?.role, 'assistant',
    `${what}: the first chunk's delta must carry role "assistant" (as OpenAI does)`);
  assert.ok(out.finish, `${what}: no chunk with finish_reason`);
  return out;
}

async function expectApiError(promise, status, what) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `${what}: expected an APIError, got ${e}`);
    assert.equal(e.status, status, `${what}: status ${e.status}: ${e.message}`);
    assert.deepEqual(H.errorEnvelopeProblems({ error: e.error }), [], `${what}: error body ${JSON.stringify(e.error)}`);
    return e;
  }
  assert.fail(`${what}: expected HTTP ${status}, the request succeeded`);
}

function assertError(r, status, what) {
  assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status}: ${r.text.slice(0, 500)}`);
  assert.deepEqual(H.errorEnvelopeProblems(r.json), [], `${what}: error body ${r.text.slice(0, 500)}`);
  assert.match(r.headers.get('content-type') || '', /application\/json/, `${what}: content-type of the error`);
}

describe('tandem serve: OpenAI API', { skip: H.SKIP, timeout: 200_000 }, () => {
  let srv;
  let oa;
  before(async () => {
    srv = await H.startServer(BASE_FLAGS);
    oa = client(srv);
  });
  after(async () => {
    if (!srv) return;
    const alive = srv.alive();
    const t0 = Date.now();
    const st = await srv.stop();
    if (!alive) assert.fail(`the server died during the tests: ${JSON.stringify(st)}\n${srv.log()}`);
    assert.ok(Date.now() - t0 < 10_000, `the server took more than 10 s to exit on SIGTERM (killed)`);
  });

  test('GET /health', async () => {
    const r = await srv.get('/health');
    assert.equal(r.status, 200);
  });

  test('GET /v1/models (raw and through the client)', async () => {
    const r = await srv.get('/v1/models');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.object, 'list');
    assert.ok(Array.isArray(r.json.data) && r.json.data.length >= 1);
    const m = r.json.data.find((x) => x.id === MODEL_NAME);
    assert.ok(m, `--served-model-name ${MODEL_NAME} not listed: ${r.text}`);
    assert.equal(m.object, 'model');
    assert.ok(Number.isInteger(m.created), 'model.created');
    assert.equal(typeof m.owned_by, 'string', 'model.owned_by');
    const ids = [];
    for await (const model of oa.models.list()) ids.push(model.id);
    assert.ok(ids.includes(MODEL_NAME));
  });

  test('chat completion, non-streaming: schema, chat template, greedy text of the reference', async () => {
    // ref case 1: [{user: "hello"}] -> 4 prompt ids (BOS <User> hello <Assistant>) and 32 greedy ids.
    const ref = REF[1];
    const r = await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1), max_tokens: 32, temperature: 0 });
    checkChatCompletion(r, 32, 'chat');
    assert.equal(r.usage.prompt_tokens, ref.ids.length, 'prompt_tokens must be the chat template\'s token count');
    const eos = ref.greedy.indexOf(EOS_ID);
    const expectIds = eos >= 0 ? ref.greedy.slice(0, eos) : ref.greedy;
    const expectText = await visibleText(srv, expectIds);
    assert.equal(r.choices[0].message.content, expectText, 'greedy chat content differs from the reference ids');
    assert.equal(r.choices[0].finish_reason, eos >= 0 ? 'stop' : 'length');
    // ref case 2: a multi-turn conversation with a system prompt and an assistant turn.
    const r2 = await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(2), max_tokens: 4, temperature: 0 });
    checkChatCompletion(r2, 4, 'multi-turn chat');
    assert.equal(r2.usage.prompt_tokens, REF[2].ids.length, 'multi-turn prompt_tokens');
    assert.equal(r2.choices[0].message.content, await visibleText(srv, REF[2].greedy.slice(0, 4)));
  });

  test('chat completion, streaming with include_usage equals the non-streaming one', async () => {
    const body = { model: MODEL_NAME, messages: refChat(1), max_tokens: 24, temperature: 0 };
    const full = await oa.chat.completions.create(body);
    checkChatCompletion(full, 24, 'non-streaming');
    const s = await collectChatStream(await oa.chat.completions.create(
      { ...body, stream: true, stream_options: { include_usage: true } }), 'stream');
    assert.ok(s.usage, 'include_usage: no usage chunk');
    checkUsage(s.usage, 24, s.finish, 'stream usage');
    assert.equal(s.content, full.choices[0].message.content, 'streamed content != non-streamed content');
    assert.equal(s.finish, full.choices[0].finish_reason);
    assert.deepEqual(s.usage, full.usage, 'streamed usage != non-streamed usage');
    assert.ok(s.contentChunks <= s.usage.completion_tokens, 'more content chunks than tokens');
    assert.ok(s.contentChunks >= 1);
    // Without include_usage no chunk carries usage.
    const s2 = await collectChatStream(await oa.chat.completions.create({ ...body, stream: true }), 'stream w/o usage');
    assert.equal(s2.usage, null, 'usage sent without stream_options.include_usage');
    assert.equal(s2.content, s.content);
  });

  test('chat: content as an array of text parts equals the string form; max_completion_tokens; unknown fields ignored', async () => {
    const a = await oa.chat.completions.create({ model: MODEL_NAME, max_tokens: 6, temperature: 0,
      messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say something long.' }] });
    const b = await oa.chat.completions.create({ model: MODEL_NAME, max_tokens: 6, temperature: 0,
      messages: [{ role: 'system', content: [{ type: 'text', text: 'You are terse.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Say something ' }, { type: 'text', text: 'long.' }] }] });
    assert.equal(b.choices[0].message.content, a.choices[0].message.content);
    assert.equal(b.usage.prompt_tokens, a.usage.prompt_tokens);
    const c = await srv.post('/v1/chat/completions', { model: MODEL_NAME, temperature: 0, max_completion_tokens: 5,
      messages: [{ role: 'user', content: 'Say something long.' }], user: 'test-user', frobnicate: { x: [1, 2] },
      metadata: null });
    assert.equal(c.status, 200, c.text);
    checkChatCompletion(c.json, 5, 'max_completion_tokens');
    if (c.json.choices[0].finish_reason === 'length') assert.equal(c.json.usage.completion_tokens, 5);
    // `model` is optional for a server with one model.
    const d = await srv.post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    assert.equal(d.status, 200, d.text);
  });

  test('completions with a token-id prompt: schema and usage', async () => {
    const ids = REF[0].ids;
    const r = await oa.completions.create({ model: MODEL_NAME, prompt: ids, max_tokens: 10, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(typeof r.id, 'string');
    assert.ok(Number.isInteger(r.created));
    assert.equal(r.model, MODEL_NAME);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(typeof c.text, 'string');
    assert.ok(['stop', 'length'].includes(c.finish_reason));
    assert.ok('logprobs' in c);
    checkUsage(r.usage, 10, c.finish_reason, 'completion');
    assert.equal(r.usage.prompt_tokens, ids.length, 'a token-id prompt is used as is');
    // A one-element array of strings is the same as the string.
    const s1 = await oa.completions.create({ model: MODEL_NAME, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
    const s2 = await oa.completions.create({ model: MODEL_NAME, prompt: ['Once upon a time'], max_tokens: 5, temperature: 0 });
    assert.equal(s2.choices[0].text, s1.choices[0].text);
    assert.equal(s2.usage.prompt_tokens, s1.usage.prompt_tokens);
  });

  test('greedy completions equal `tandem eval --greedy` (text via /detokenize), solo, concurrent and streamed', async () => {
    const N = 16;
    const prompts = [...REF.map((c) => c.ids), [0, 128803, 1957, 128804], Array.from({ length: 40 }, (_, i) => 1000 + 37 * i)];
    const greedy = await H.evalGreedy(prompts, N);
    // Generated text leaves out control tokens (as vLLM's skip_special_tokens); /detokenize keeps them,
    // so DeepSeek control tokens (<｜...｜>, e.g. placeholders) are dropped before detokenizing.
    const expected = [];
    for (const g of greedy) {
      const eos = g.indexOf(EOS_ID);
      const ids = eos >= 0 ? g.slice(0, eos) : g;
      expected.push({ text: await visibleText(srv, ids), finish: eos >= 0 ? 'stop' : 'length', n: eos >= 0 ? eos : N });
    }
    const one = (ids) => srv.post('/v1/completions', { model: MODEL_NAME, prompt: ids, max_tokens: N, temperature: 0 });
    const check = (r, i, how) => {
      assert.equal(r.status, 200, `${how} case ${i}: ${r.text}`);
      const c = r.json.choices[0];
      assert.equal(c.text, expected[i].text, `${how} case ${i}: text differs from eval's greedy ids ${JSON.stringify(greedy[i])}`);
      assert.equal(c.finish_reason, expected[i].finish, `${how} case ${i}: finish_reason`);
      if (expected[i].finish === 'length') assert.equal(r.json.usage.completion_tokens, N, `${how} case ${i}: completion_tokens`);
      assert.equal(r.json.usage.prompt_tokens, prompts[i].length);
    };
    for (let i = 0; i < prompts.length; ++i) check(await one(prompts[i]), i, 'solo');
    const all = await Promise.all(prompts.map(one));
    all.forEach((r, i) => check(r, i, 'concurrent'));
    const streamed = await Promise.all(prompts.map((ids) => srv.stream('/v1/completions',
      { model: MODEL_NAME, prompt: ids, max_tokens: N, temperature: 0, stream_options: { include_usage: true } })));
    streamed.forEach((s, i) => {
      assert.equal(s.status, 200);
      assert.deepEqual(s.framingErrors, []);
      assert.ok(s.done, 'no data: [DONE]');
      const choices = s.events.filter((e) => e.choices && e.choices.length);
      for (const e of s.events) assert.equal(e.object, 'text_completion', 'streamed completion chunks are "text_completion"');
      const text = choices.map((e) => e.choices[0].text ?? '').join('');
      assert.equal(text, expected[i].text, `streamed case ${i}`);
      const fin = choices.filter((e) => e.choices[0].finish_reason);
      assert.equal(fin.length, 1, 'exactly one chunk with finish_reason');
      assert.equal(fin[0].choices[0].finish_reason, expected[i].finish);
      const last = s.events[s.events.length - 1];
      assert.deepEqual(last.choices, [], 'include_usage: the last chunk has empty choices');
      assert.equal(last.usage.prompt_tokens, prompts[i].length);
      if (expected[i].finish === 'length') assert.equal(last.usage.completion_tokens, N);
    });
  });

  test('sampling: seed reproduces, top_k=1 equals greedy, penalties and other fields are accepted', async () => {
    const base = { model: MODEL_NAME, prompt: REF[4].ids, max_tokens: 12 };
    const greedy = (await oa.completions.create({ ...base, temperature: 0 })).choices[0].text;
    const k1 = (await oa.completions.create({ ...base, temperature: 1.0, top_k: 1, seed: 7 })).choices[0].text;
    assert.equal(k1, greedy, 'temperature 1 with top_k 1 must equal greedy');
    const a = await oa.completions.create({ ...base, temperature: 1.0, seed: 1234 });
    const b = await oa.completions.create({ ...base, temperature: 1.0, seed: 1234 });
    assert.equal(b.choices[0].text, a.choices[0].text, 'the same seed must give the same text');
    const seeds = new Set();
    for (const seed of [1, 2, 3, 4]) {
      seeds.add((await oa.completions.create({ ...base, temperature: 1.5, seed })).choices[0].text);
    }
    assert.ok(seeds.size > 1, 'different seeds at temperature 1.5 all gave the same text: sampling ignores the seed?');
    const p = await srv.post('/v1/completions', { ...base, temperature: 0.7, top_p: 0.9, top_k: 40, min_p: 0.05,
      presence_penalty: 0.5, frequency_penalty: 0.5, repetition_penalty: 1.1, seed: 3, user: 'u' });
    assert.equal(p.status, 200, p.text);
    checkUsage(p.json.usage, 12, p.json.choices[0].finish_reason, 'penalties');
    // Penalties change greedy decoding once a token would repeat; at least they must not break it.
    const rep = await srv.post('/v1/completions', { ...base, max_tokens: 32, temperature: 0, repetition_penalty: 1.3 });
    assert.equal(rep.status, 200, rep.text);
  });

  test('stop strings: text ends before the first match, finish_reason "stop", also streamed and as a list', async () => {
    const base = { model: MODEL_NAME, prompt: REF[0].ids, temperature: 0 };
    const full = (await oa.completions.create({ ...base, max_tokens: 24 })).choices[0].text;
    // A stop string from the middle of the greedy text: its first occurrence decides the cut.
    const chars = [...full];
    assert.ok(chars.length >= 8, `greedy text too short to test stop strings: ${JSON.stringify(full)}`);
    const from = Math.floor(chars.length / 2);
    const stop = chars.slice(from, from + 2).join('');
    const cut = full.slice(0, full.indexOf(stop));
    const r = await oa.completions.create({ ...base, max_tokens: 24, stop });
    assert.equal(r.choices[0].text, cut, `stop ${JSON.stringify(stop)} in ${JSON.stringify(full)}`);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.completion_tokens < 24);
    const l = await oa.completions.create({ ...base, max_tokens: 24, stop: ['\u0000never-appears', stop] });
    assert.equal(l.choices[0].text, cut, 'stop as a list');
    assert.equal(l.choices[0].finish_reason, 'stop');
    const s = await srv.stream('/v1/completions', { ...base, max_tokens: 24, stop });
    const text = s.events.filter((e) => e.choices?.length).map((e) => e.choices[0].text ?? '').join('');
    assert.equal(text, cut, 'streamed text with a stop string (a partial match must be held back)');
    assert.equal(s.events.filter((e) => e.choices?.[0]?.finish_reason).at(-1).choices[0].finish_reason, 'stop');
    // Chat: stop string on the greedy answer.
    const chatFull = (await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1), max_tokens: 24, temperature: 0 }))
      .choices[0].message.content;
    const cc = [...chatFull];
    const chatStop = cc.slice(Math.floor(cc.length / 2), Math.floor(cc.length / 2) + 2).join('');
    const chatCut = chatFull.slice(0, chatFull.indexOf(chatStop));
    const c1 = await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1), max_tokens: 24, temperature: 0, stop: [chatStop] });
    assert.equal(c1.choices[0].message.content, chatCut);
    assert.equal(c1.choices[0].finish_reason, 'stop');
    const c2 = await collectChatStream(await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1),
      max_tokens: 24, temperature: 0, stop: chatStop, stream: true }), 'chat stream with stop');
    assert.equal(c2.content, chatCut);
    assert.equal(c2.finish, 'stop');
    // A stop string that never appears changes nothing.
    const none = await oa.completions.create({ ...base, max_tokens: 24, stop: ['\u0001\u0002'] });
    assert.equal(none.choices[0].text, full);
  });

  test('logprobs: chat top_logprobs and legacy completions logprobs', async () => {
    const r = await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1), max_tokens: 8, temperature: 0,
      logprobs: true, top_logprobs: 3 });
    const content = r.choices[0].logprobs?.content;
    assert.ok(Array.isArray(content), `choices[0].logprobs.content missing: ${JSON.stringify(r.choices[0].logprobs)}`);
    assert.equal(content.length, r.usage.completion_tokens, 'one logprobs entry per generated token');
    const bytes = [];
    for (const [i, t] of content.entries()) {
      assert.equal(typeof t.token, 'string');
      assert.ok(Number.isFinite(t.logprob) && t.logprob <= 1e-6, `logprob ${t.logprob}`);
      assert.ok(Array.isArray(t.bytes), `entry ${i}: bytes`);
      bytes.push(...t.bytes);
      assert.equal(t.top_logprobs.length, 3, `entry ${i}: top_logprobs length`);
      for (let k = 1; k < 3; ++k) assert.ok(t.top_logprobs[k - 1].logprob >= t.top_logprobs[k].logprob, 'top_logprobs sorted');
      // Greedy: the chosen token is the most likely one.
      assert.equal(t.top_logprobs[0].token, t.token, `entry ${i}: greedy token is not the top alternative`);
      assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4);
      assert.ok(t.top_logprobs.reduce((a, x) => a + Math.exp(x.logprob), 0) <= 1 + 1e-4, 'probabilities sum over 1');
    }
    assert.equal(Buffer.from(bytes).toString('utf8'), r.choices[0].message.content, 'logprobs bytes do not spell the content');
    // Streamed chat logprobs.
    const s = await collectChatStream(await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1),
      max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2, stream: true }), 'stream logprobs');
    const streamedEntries = s.chunks.flatMap((ch) => ch.choices?.[0]?.logprobs?.content ?? []);
    assert.equal(streamedEntries.length, content.length, 'streamed logprobs entries');
    streamedEntries.forEach((t, i) => assert.equal(t.token, content[i].token));
    // No logprobs unless asked.
    const plain = await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1), max_tokens: 2, temperature: 0 });
    assert.ok(plain.choices[0].logprobs === null || plain.choices[0].logprobs === undefined);
    // Legacy completions: logprobs is an integer.
    const c = await srv.post('/v1/completions', { model: MODEL_NAME, prompt: REF[0].ids, max_tokens: 6, temperature: 0, logprobs: 2 });
    assert.equal(c.status, 200, c.text);
    const lp = c.json.choices[0].logprobs;
    assert.ok(lp && Array.isArray(lp.tokens), `legacy logprobs: ${JSON.stringify(lp)}`);
    assert.equal(lp.tokens.length, c.json.usage.completion_tokens);
    assert.equal(lp.token_logprobs.length, lp.tokens.length);
    assert.equal(lp.top_logprobs.length, lp.tokens.length);
    lp.top_logprobs.forEach((alt, i) => {
      const vals = Object.values(alt);
      assert.ok(vals.length >= 1 && vals.length <= 3, `top_logprobs[${i}] has ${vals.length} entries`);
      assert.ok(Math.abs(Math.max(...vals) - lp.token_logprobs[i]) < 1e-4, 'greedy token has the top logprob');
    });
    if (lp.tokens.every((t) => !t.includes('\uFFFD') && !t.startsWith('bytes:'))) {
      assert.equal(lp.tokens.join(''), c.json.choices[0].text, 'legacy logprobs tokens do not spell the text');
    }
    // top_logprobs over the OpenAI maximum (20) is refused.
    const big = await srv.post('/v1/chat/completions', { messages: refChat(1), max_tokens: 2, logprobs: true, top_logprobs: 1000 });
    assertError(big, 400, 'top_logprobs 1000');
  });

  test('/tokenize and /detokenize: reference ids, round trips', async () => {
    for (const c of REF.filter((x) => x.prompt.kind === 'text')) {
      let toks = await srv.tokenize(c.prompt.text);
      if (toks[0] === 0 && c.ids[0] !== 0) toks = toks.slice(1);  // a BOS, if the server adds one
      assert.deepEqual(toks, c.ids, `/tokenize ${JSON.stringify(c.prompt.text.slice(0, 40))}`);
      assert.equal(await srv.detokenize(c.ids), c.prompt.text);
    }
    for (const text of ['Hello, world!', '  leading spaces\n\ttabs\r\n', '🦀 emoji 🚀 and ünïcödé', '我们很高兴', 'a'.repeat(500)]) {
      const toks = await srv.tokenize(text);
      assert.ok(Array.isArray(toks) && toks.every(Number.isInteger), `tokens of ${JSON.stringify(text)}`);
      let t = toks;
      if (t[0] === 0) t = t.slice(1);
      assert.equal(await srv.detokenize(t), text, `round trip of ${JSON.stringify(text)}`);
    }
    const viaPrompt = await srv.post('/tokenize', { prompt: 'Hello, world!' });
    assert.equal(viaPrompt.status, 200, viaPrompt.text);
    assert.deepEqual(viaPrompt.json.tokens, await srv.tokenize('Hello, world!'), '"prompt" and "content" tokenize alike');
    assert.equal(await srv.detokenize([]), '');
    // The greedy reference text of the fixture decodes through /detokenize.
    assert.equal(await srv.detokenize(REF[0].greedy), REF[0].greedy_text);
  });

  test('/metrics: Prometheus text with the documented families, counters follow a request', async () => {
    const r = await srv.get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /^text\/plain/, 'content-type');
    const m = H.parsePrometheus(r.text);
    assert.deepEqual(m.errors, [], 'exposition format errors');
    for (const g of ['tandem_kv_pages_used', 'tandem_kv_pages_free', 'tandem_requests_running', 'tandem_requests_waiting']) {
      assert.ok(m.has(g), `${g} missing`);
      assert.equal(m.types[g], 'gauge', `${g} TYPE`);
    }
    for (const c of ['tandem_prompt_tokens_total', 'tandem_generation_tokens_total', 'tandem_preemptions_total',
      'tandem_prefix_cache_hit_tokens_total']) {
      assert.ok(m.has(c), `${c} missing`);
      assert.equal(m.types[c] ?? m.types[c.replace(/_total$/, '')], 'counter', `${c} TYPE`);
    }
    for (const h of ['tandem_time_to_first_token_seconds', 'tandem_request_duration_seconds']) {
      assert.equal(m.types[h], 'histogram', `${h} TYPE`);
      const buckets = m.samples.filter((s) => s.name === `${h}_bucket`);
      assert.ok(buckets.length >= 2, `${h}: buckets`);
      assert.ok(buckets.some((b) => b.labels.le === '+Inf'), `${h}: +Inf bucket`);
      for (let i = 1; i < buckets.length; ++i) {
        assert.ok(Number(buckets[i].labels.le) >= Number(buckets[i - 1].labels.le) || buckets[i].labels.le === '+Inf', `${h}: le order`);
        assert.ok(buckets[i].value >= buckets[i - 1].value, `${h}: cumulative buckets`);
      }
      assert.equal(m.get(`${h}_bucket`, { le: '+Inf' }), m.get(`${h}_count`), `${h}: +Inf bucket == _count`);
      assert.ok(m.has(`${h}_sum`), `${h}_sum`);
    }
    assert.equal(m.get('tandem_requests_running'), 0);
    assert.equal(m.get('tandem_kv_pages_used'), 0, 'pages used while idle');
    assert.ok(m.get('tandem_kv_pages_free') > 0);
    // One request moves the counters by its usage.
    const before = m;
    const c = await oa.completions.create({ model: MODEL_NAME, prompt: REF[3].ids, max_tokens: 7, temperature: 0 });
    const after = (await srv.waitMetrics((x) => x.get('tandem_request_duration_seconds_count') > before.get('tandem_request_duration_seconds_count'))).m;
    const d = (name) => after.sum(name) - before.sum(name);
    assert.equal(d('tandem_prompt_tokens_total'), c.usage.prompt_tokens, 'prompt tokens counter delta');
    assert.equal(d('tandem_generation_tokens_total'), c.usage.completion_tokens, 'generation tokens counter delta');
    assert.equal(d('tandem_time_to_first_token_seconds_count'), 1);
    assert.equal(d('tandem_request_duration_seconds_count'), 1);
    assert.ok(d('tandem_request_duration_seconds_sum') > 0);
    // The same long prompt twice: the second reuses cached prefix pages.
    const long = REF[5].ids;  // 252 tokens
    await oa.completions.create({ model: MODEL_NAME, prompt: long, max_tokens: 2, temperature: 0 });
    const mid = await srv.metrics();
    await oa.completions.create({ model: MODEL_NAME, prompt: long, max_tokens: 2, temperature: 0 });
    const end = await srv.metrics();
    assert.ok(end.sum('tandem_prefix_cache_hit_tokens_total') - mid.sum('tandem_prefix_cache_hit_tokens_total') >= 16 * 10,
      'a repeated 252-token prompt should hit the prefix cache');
  });

  test('client disconnect mid-stream cancels the request and frees its pages', async () => {
    const before = await srv.metrics();
    const ac = new AbortController();
    let got = 0;
    const t0 = Date.now();
    const res = await srv.stream('/v1/completions', { model: MODEL_NAME, prompt: REF[5].ids, max_tokens: MAX_NEW, temperature: 0 },
      { signal: ac.signal, onEvent: () => { if (++got === 3) ac.abort(); } });
    assert.ok(res.aborted, 'stream was not aborted (finished before 3 events?)');
    const { ok, m } = await srv.waitMetrics((x) => x.get('tandem_requests_running') === 0 && x.get('tandem_kv_pages_used') === 0
      && x.get('tandem_requests_waiting') === 0, 3000);
    assert.ok(ok, `after the disconnect: running ${m.get('tandem_requests_running')}, pages used ${m.get('tandem_kv_pages_used')}`);
    const generated = m.sum('tandem_generation_tokens_total') - before.sum('tandem_generation_tokens_total');
    const elapsed = Date.now() - t0;
    assert.ok(generated < MAX_NEW, `the cancelled request generated all ${generated} tokens (${elapsed} ms): not cancelled`);
    // The server keeps serving.
    const r = await oa.completions.create({ model: MODEL_NAME, prompt: REF[0].ids, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
  });

  test('errors: 400 in the OpenAI envelope for malformed requests', async () => {
    const chat = '/v1/chat/completions';
    const cmpl = '/v1/completions';
    const msgs = [{ role: 'user', content: 'hi' }];
    const cases = [
      [chat, '{"model": "x", "messages": [', 'truncated JSON'],
      [chat, '', 'empty body'],
      [chat, 'not json at all', 'not JSON'],
      [chat, '[]', 'array body'],
      [chat, '"just a string"', 'string body'],
      [chat, {}, 'messages missing'],
      [chat, { messages: 'hello' }, 'messages a string'],
      [chat, { messages: [] }, 'messages empty'],
      [chat, { messages: [{ content: 'hi' }] }, 'role missing'],
      [chat, { messages: [{ role: 'wizard', content: 'hi' }] }, 'unknown role'],
      [chat, { messages: [{ role: 'user', content: 5 }] }, 'content a number'],
      [chat, { messages: [{ role: 'user', content: [{ type: 'text', text: 5 }] }] }, 'text part not a string'],
      [chat, { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] }, 'image part on a text model'],
      [chat, { messages: [null] }, 'message null'],
      [chat, { messages: msgs, max_tokens: '8' }, 'max_tokens a string'],
      [chat, { messages: msgs, max_tokens: -1 }, 'max_tokens negative'],
      [chat, { messages: msgs, max_tokens: 1.5 }, 'max_tokens fractional'],
      [chat, { messages: msgs, max_completion_tokens: 'x' }, 'max_completion_tokens a string'],
      [chat, { messages: msgs, temperature: 'hot' }, 'temperature a string'],
      [chat, { messages: msgs, temperature: -1 }, 'temperature negative'],
      [chat, { messages: msgs, top_p: 'x' }, 'top_p a string'],
      [chat, { messages: msgs, top_k: 'x' }, 'top_k a string'],
      [chat, { messages: msgs, seed: 'x' }, 'seed a string'],
      [chat, { messages: msgs, stream: 'yes' }, 'stream a string'],
      [chat, { messages: msgs, stop: 5 }, 'stop a number'],
      [chat, { messages: msgs, stop: [1, 2] }, 'stop a list of numbers'],
      [chat, { messages: msgs, n: 2 }, 'n = 2'],
      [chat, { messages: msgs, n: 0 }, 'n = 0'],
      [chat, { messages: msgs, n: 'one' }, 'n a string'],
      [chat, { messages: msgs, logprobs: 'yes' }, 'logprobs a string'],
      [chat, { messages: msgs, logprobs: true, top_logprobs: -1 }, 'top_logprobs negative'],
      [chat, { messages: msgs, stream: true, stream_options: 'x' }, 'stream_options a string'],
      [chat, { messages: msgs, model: 5 }, 'model a number'],
      [chat, { messages: msgs, presence_penalty: 'x' }, 'presence_penalty a string'],
      [chat, { messages: msgs, frequency_penalty: [] }, 'frequency_penalty a list'],
      [chat, { messages: msgs, repetition_penalty: {} }, 'repetition_penalty an object'],
      [chat, { messages: msgs, min_p: 'x' }, 'min_p a string'],
      [cmpl, {}, 'prompt missing'],
      [cmpl, { prompt: 5 }, 'prompt a number'],
      [cmpl, { prompt: ['a', 'b'] }, 'two prompts'],
      [cmpl, { prompt: [1, 'a'] }, 'mixed prompt list'],
      [cmpl, { prompt: [] }, 'empty prompt list'],
      [cmpl, { prompt: [999999999] }, 'token id beyond the vocabulary'],
      [cmpl, { prompt: [-5] }, 'negative token id'],
      [cmpl, { prompt: [1.5] }, 'fractional token id'],
      [cmpl, { prompt: 'hi', n: 2 }, 'completions n = 2'],
      [cmpl, { prompt: 'hi', logprobs: 'x' }, 'legacy logprobs a string'],
      [cmpl, { prompt: 'hi', max_tokens: 'x' }, 'completions max_tokens a string'],
      ['/tokenize', { content: 5 }, '/tokenize content a number'],
      ['/tokenize', {}, '/tokenize without content'],
      ['/detokenize', { tokens: 'x' }, '/detokenize tokens a string'],
      ['/detokenize', { tokens: [-1] }, '/detokenize negative id'],
      ['/detokenize', { tokens: [1e12] }, '/detokenize id out of range'],
      ['/detokenize', '{', '/detokenize truncated'],
    ];
    const failures = [];
    for (const [route, body, what] of cases) {
      const r = await srv.post(route, body);
      try {
        assertError(r, 400, what);
      } catch (e) {
        failures.push(`${what}: POST ${route} ${typeof body === 'string' ? body : JSON.stringify(body)} -> ${r.status} ${r.text.slice(0, 300)}`);
      }
    }
    assert.deepEqual(failures, [], `requests that did not get a proper 400:\n${failures.join('\n')}`);
    assert.ok(srv.alive());
  });

  test('errors: n=2 through the client is a BadRequestError (400)', async () => {
    await expectApiError(oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1), n: 2, max_tokens: 2 }), 400, 'chat n=2');
    await expectApiError(oa.completions.create({ model: MODEL_NAME, prompt: 'x', n: 2, max_tokens: 2 }), 400, 'completions n=2');
    const one = await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1), n: 1, max_tokens: 2 });
    assert.equal(one.choices.length, 1);
  });

  test('errors: a prompt longer than the context is a 400, and the server survives it', async () => {
    const ids = Array.from({ length: 5000 }, (_, i) => 100 + (i % 1000));
    assertError(await srv.post('/v1/completions', { model: MODEL_NAME, prompt: ids, max_tokens: 4 }), 400, '5000-token prompt, 4096 cache');
    assertError(await srv.stream('/v1/completions', { model: MODEL_NAME, prompt: ids, max_tokens: 4 }), 400, 'same, streamed');
    const words = 'lorem ipsum dolor sit amet '.repeat(2000);
    assertError(await srv.post('/v1/chat/completions', { messages: [{ role: 'user', content: words }], max_tokens: 4 }), 400, 'long chat message');
    await expectApiError(oa.completions.create({ model: MODEL_NAME, prompt: ids, max_tokens: 4 }), 400, 'long prompt via the client');
    const ok = await oa.completions.create({ model: MODEL_NAME, prompt: ids.slice(0, 3000), max_tokens: 4, temperature: 0 });
    assert.equal(ok.usage.prompt_tokens, 3000, 'a 3000-token prompt fits in 4096 cached tokens');
  });

  test('errors: unknown routes and methods are 404/405', async () => {
    const r = await srv.get('/v1/nope');
    assert.equal(r.status, 404);
    const g = await srv.get('/v1/chat/completions');
    assert.ok([404, 405].includes(g.status), `GET /v1/chat/completions -> ${g.status}`);
  });
});

describe('tandem serve --api-key', { skip: H.SKIP, timeout: 60_000 }, () => {
  let srv;
  const KEY = 'sk-tandem-test-key';
  before(async () => { srv = await H.startServer(flags({ '--api-key': KEY })); });
  after(async () => { await srv?.stop(); });

  test('missing or wrong key: 401 in the OpenAI envelope; right key: 200', async () => {
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    for (const [what, auth] of [['no key', null], ['wrong key', 'Bearer nope'], ['not bearer', `Basic ${KEY}`], ['empty bearer', 'Bearer ']]) {
      const headers = { 'content-type': 'application/json' };
      if (auth !== null) headers.authorization = auth;
      for (const route of ['/v1/chat/completions', '/v1/completions']) {
        const r = H.readResponse(await fetch(srv.url + route, { method: 'POST', headers, body }));
        assertError(await r, 401, `${what} on ${route}`);
      }
      const m = await H.readResponse(await fetch(`${srv.url}/v1/models`, { headers: auth ? { authorization: auth } : {} }));
      assertError(m, 401, `${what} on /v1/models`);
    }
    const ok = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', body,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` } });
    assert.equal(ok.status, 200, await ok.text());
    const right = client(srv, KEY);
    const r = await right.chat.completions.create({ messages: refChat(1), model: MODEL_NAME, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
    await expectApiError(client(srv, 'sk-wrong').chat.completions.create({ messages: refChat(1), model: MODEL_NAME, max_tokens: 2 }),
      401, 'client with a wrong key');
  });
});

describe('tandem serve --max-queue 1', { skip: H.SKIP, timeout: 120_000 }, () => {
  let srv;
  before(async () => { srv = await H.startServer(flags({ '--max_batch_size': '1', '--max-queue': '1' })); });
  after(async () => { await srv?.stop(); });

  test('a full queue answers 503 with Retry-After; the others complete; afterwards requests are served again', async () => {
    const body = { model: MODEL_NAME, prompt: REF[5].ids, max_tokens: 400, temperature: 0 };
    const reqs = [];
    for (let i = 0; i < 8; ++i) {
      reqs.push(i % 2 ? srv.stream('/v1/completions', body) : srv.post('/v1/completions', body));
    }
    const res = await Promise.all(reqs);
    const statuses = res.map((r) => r.status);
    const rejected = res.filter((r) => r.status === 503);
    assert.ok(rejected.length >= 1, `no 503 among 8 concurrent requests with --max-queue 1: ${statuses}`);
    assert.ok(res.filter((r) => r.status === 200).length >= 1, `none served: ${statuses}`);
    assert.ok(statuses.every((s) => s === 200 || s === 503), `statuses: ${statuses}`);
    for (const r of rejected) {
      assert.deepEqual(H.errorEnvelopeProblems(r.json), [], `503 body: ${r.text}`);
      const ra = r.headers.get('retry-after');
      assert.ok(ra !== null, '503 without a Retry-After header');
      assert.ok(/^\d+$/.test(ra) || !Number.isNaN(Date.parse(ra)), `Retry-After: ${ra}`);
    }
    for (const r of res.filter((x) => x.status === 200)) {
      if (r.json) assert.equal(r.json.usage.completion_tokens, 400);
      else assert.ok(r.done && r.framingErrors.length === 0);
    }
    const { ok, m } = await srv.waitMetrics((x) => x.get('tandem_requests_running') === 0 && x.get('tandem_requests_waiting') === 0);
    assert.ok(ok, `queue not drained: ${m.get('tandem_requests_running')} running, ${m.get('tandem_requests_waiting')} waiting`);
    const again = await srv.post('/v1/completions', { ...body, max_tokens: 2 });
    assert.equal(again.status, 200, again.text);
  });
});

describe('tandem serve --force_think', { skip: H.SKIP, timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await H.startServer(flags({ '--force_think': null })); });
  after(async () => { await srv?.stop(); });

  test('the answer starts inside <think>: generated text goes to reasoning_content, streamed and not', async () => {
    // The prompt the server builds: the chat template's text plus "<think>\n".
    const rendered = await srv.detokenize(REF[1].ids);
    const ids = await srv.tokenize(`${rendered}<think>\n`);
    const plain = await srv.post('/v1/completions', { prompt: ids, max_tokens: 12, temperature: 0 });
    assert.equal(plain.status, 200, plain.text);
    const generated = plain.json.choices[0].text;
    assert.ok(!generated.includes('</think>'), 'the greedy text closes the think block: pick another prompt');
    const oa = client(srv);
    const r = await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1), max_tokens: 12, temperature: 0 });
    assert.equal(r.usage.prompt_tokens, ids.length, 'prompt_tokens with --force_think');
    const msg = r.choices[0].message;
    assert.equal(msg.reasoning_content, generated, 'reasoning_content');
    assert.ok(msg.content === '' || msg.content === null, `content should be empty, got ${JSON.stringify(msg.content)}`);
    const s = await collectChatStream(await oa.chat.completions.create({ model: MODEL_NAME, messages: refChat(1),
      max_tokens: 12, temperature: 0, stream: true }), 'force_think stream');
    assert.equal(s.reasoning, generated, 'streamed reasoning_content');
    assert.equal(s.content, '');
  });
});
