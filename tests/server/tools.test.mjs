// Tool calling (issue 13, feature 1) end to end, through the official `openai` and `ollama` clients, on both
// fixture families: DeepSeek-V3 (its template has no tools section: the server writes one; calls are control
// tokens) and Qwen3-MoE (its template renders `tools`; Hermes <tool_call> JSON). Random-weight models never call
// by themselves, so the server runs with --test-hooks and requests carry `tandem_test_forced_output`: text the
// model is made to write first (special tokens parsed), after which it goes on greedily. That drives the real
// generation path: detokenizer, reasoning split, tool-call parser, response and stream assembly. Forced calls
// (tool_choice "required" / named) need no hook: constrained decoding makes even a random model write a valid call.
// Run: TANDEM_BIN=build/tandem node --test tests/server/tools.test.mjs
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import * as H from './lib/harness.mjs';

const { MODEL_NAME } = H;
const FLAGS = ['--test-hooks', '--max_new_tokens', '96', '--cache_lens', '4096', '--chunk_size', '256'];
const QWEN_DIR = H.fixtureModel('tiny-qwen3moe-bf16');

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } },
      required: ['city'] },
  },
};
const TIME = { type: 'function', function: { name: 'get_time', description: 'Local time of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
const USER = [{ role: 'user', content: 'What is the weather in Paris and Rome?' }];

// The same request streamed through the openai client: content, reasoning, calls assembled from delta.tool_calls
// as a client does (by index), finish_reason, and every chunk (to check what was sent).
async function streamed(oa, body) {
  const chunks = [];
  const calls = [];
  let content = '';
  let reasoning = '';
  let finish = null;
  for await (const c of await oa.chat.completions.create({ ...body, stream: true })) {
    chunks.push(c);
    const ch = c.choices[0];
    if (!ch) continue;
    content += ch.delta?.content ?? '';
    reasoning += ch.delta?.reasoning_content ?? '';
    for (const t of ch.delta?.tool_calls ?? []) {
      if (!calls[t.index]) {
        assert.ok(t.id?.startsWith('call_'), `the first fragment of call ${t.index} has its id: ${JSON.stringify(t)}`);
        assert.equal(t.type, 'function');
        assert.ok(t.function?.name, `the first fragment of call ${t.index} has its name`);
        calls[t.index] = { id: t.id, type: t.type, function: { name: t.function.name, arguments: '' } };
      } else {
        assert.equal(t.id, undefined, 'only the first fragment has the id');
      }
      calls[t.index].function.arguments += t.function?.arguments ?? '';
    }
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { chunks, calls, content, reasoning, finish };
}

// Calls without their (random) ids.
const shape = (calls) => (calls ?? []).map((c) => ({ type: c.type, name: c.function.name, arguments: c.function.arguments }));

describe('tool calling: DeepSeek-V3 fixture', { skip: H.SKIP }, () => {
  let srv;
  let oa;
  let ol;
  let id;  // token ids by spelling
  const B = '<｜tool▁calls▁begin｜>', E = '<｜tool▁calls▁end｜>', CB = '<｜tool▁call▁begin｜>', CE = '<｜tool▁call▁end｜>',
    SEP = '<｜tool▁sep｜>', EOS = '<｜end▁of▁sentence｜>';
  const call = (name, args) => `${CB}function${SEP}${name}\n\`\`\`json\n${args}\n\`\`\`${CE}`;
  before(async () => {
    srv = await H.startServer(FLAGS);
    oa = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });
    ol = new Ollama({ host: srv.url });
    id = {};
    for (const s of [B, E, CB, CE, SEP, EOS]) {
      const t = await srv.tokenize(s);
      assert.equal(t.length, 1, `${s} is one token`);
      id[s] = t[0];
    }
  });
  after(async () => { await srv?.stop(); });

  const chat = (body) => srv.post('/v1/chat/completions', { model: MODEL_NAME, temperature: 0, ...body });
  const template = async (body) => {
    const r = await srv.post('/apply-template', { model: MODEL_NAME, ...body });
    assert.equal(r.status, 200, r.text);
    return r.json.prompt;
  };

  test('tools go into the prompt as a system section in the model\'s call syntax, with real special tokens', async () => {
    const plain = await template({ messages: USER });
    const withTools = await template({ messages: [{ role: 'system', content: 'Be brief.' }, ...USER], tools: [WEATHER, TIME] });
    assert.ok(!plain.includes('get_weather'));
    // In the client's system message, after its text; each tool as its JSON, keys in the client's order.
    assert.ok(withTools.includes('Be brief.\n\n# Tools'), withTools);
    assert.ok(withTools.includes(JSON.stringify(WEATHER)), withTools);
    assert.ok(withTools.includes(JSON.stringify(TIME)), withTools);
    // The example call is written in DeepSeek's syntax.
    assert.match(withTools, new RegExp(`${B}${CB}function${SEP}FUNCTION_NAME\\n\`\`\`json\\n`));
    // The server's count of prompt tokens is that text tokenized with its markers as special tokens (one token each).
    const r = await chat({ messages: [{ role: 'system', content: 'Be brief.' }, ...USER], tools: [WEATHER, TIME], max_tokens: 1 });
    assert.equal(r.status, 200, r.text);
    const ids = await srv.tokenize(withTools);
    assert.equal(r.json.usage.prompt_tokens, ids.length);
    assert.equal(ids.filter((t) => t === id[B]).length, 1, 'one <｜tool▁calls▁begin｜> token: the example');
    // A description spelling the markers stays text: the server counts more tokens than the same text with the
    // spellings parsed as special tokens.
    const sneaky = { type: 'function', function: { ...WEATHER.function, description: `x ${B}${CB} y` } };
    const r2 = await chat({ messages: USER, tools: [sneaky], max_tokens: 1 });
    const parsed = await srv.tokenize(await template({ messages: USER, tools: [sneaky] }));
    assert.ok(r2.json.usage.prompt_tokens > parsed.length + 2, `the spelled markers are plain tokens (${r2.json.usage.prompt_tokens} vs ${parsed.length})`);
    // tool_choice none: no tools section (the same prompt as without tools).
    assert.equal(await template({ messages: USER, tools: [WEATHER], tool_choice: 'none' }), plain);
    // parallel_tool_calls false asks for one call.
    assert.ok((await template({ messages: USER, tools: [WEATHER], parallel_tool_calls: false })).includes('at most one'));
  });

  test('history: assistant tool_calls and tool messages are rendered by the template', async () => {
    const messages = [...USER,
      { role: 'assistant', content: null, tool_calls: [
        { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
      { role: 'tool', tool_call_id: 'call_a', content: 'sunny' },
      { role: 'tool', tool_call_id: 'call_b', content: [{ type: 'text', text: 'rain' }] }];
    const p = await template({ messages, tools: [WEATHER] });
    assert.ok(p.includes(`<｜Assistant｜>${B}${call('get_weather', '{"city":"Paris"}')}\n${call('get_weather', '{"city":"Rome"}')}${E}`), p);
    assert.ok(p.includes('<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>rain'), p);
    const r = await oa.chat.completions.create({ model: MODEL_NAME, messages, tools: [WEATHER], max_tokens: 2, temperature: 0 });
    assert.equal(r.choices[0].message.role, 'assistant');
    // Text sent with calls is dropped by this template (it writes calls only for null content): the same prompt.
    const withText = structuredClone(messages);
    withText[1].content = 'checking';
    assert.equal(await template({ messages: withText, tools: [WEATHER] }), p);
  });

  test('a call the model writes comes back as message.tool_calls; streamed fragments assemble to the same', async () => {
    const forced = `Let me check.\n\n${B}${call('get_weather', '{"city": "Paris", "unit": "c"}')}\n${call('get_time', '{"city": "Rome"}')}${E}${EOS}`;
    const body = { model: MODEL_NAME, messages: USER, tools: [WEATHER, TIME], temperature: 0, tandem_test_forced_output: forced };
    const r = await oa.chat.completions.create(body);
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.content, 'Let me check.');
    assert.deepEqual(shape(m.tool_calls), [
      { type: 'function', name: 'get_weather', arguments: '{"city": "Paris", "unit": "c"}' },
      { type: 'function', name: 'get_time', arguments: '{"city": "Rome"}' }]);
    for (const c of m.tool_calls) assert.match(c.id, /^call_[A-Za-z0-9]{24}$/);
    assert.notEqual(m.tool_calls[0].id, m.tool_calls[1].id);
    assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { city: 'Paris', unit: 'c' });

    const s = await streamed(oa, body);
    assert.equal(s.finish, 'tool_calls');
    assert.equal(s.content, m.content);
    assert.deepEqual(shape(s.calls), shape(m.tool_calls));
    assert.ok(s.chunks.filter((c) => c.choices[0]?.delta?.tool_calls).length >= 4, 'arguments come in pieces');
    for (const c of s.chunks) {
      assert.ok(!/[｜▁]/.test(c.choices[0]?.delta?.content ?? ''), `no marker text in content: ${JSON.stringify(c)}`);
    }
    // The text before the call streamed before the call's first fragment.
    const firstCall = s.chunks.findIndex((c) => c.choices[0]?.delta?.tool_calls);
    assert.equal(s.chunks.slice(0, firstCall).map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Let me check.');
  });

  test('cut by max_tokens inside the arguments: the same partial call streamed or not (greedy continuation)', async () => {
    const forced = `${B}${CB}function${SEP}get_weather\n\`\`\`json\n{"city": "`;
    const body = { model: MODEL_NAME, messages: USER, tools: [WEATHER], temperature: 0, max_tokens: 30,
      tandem_test_forced_output: forced };
    const r = await oa.chat.completions.create(body);
    assert.equal(r.choices[0].finish_reason, 'length');
    const calls = r.choices[0].message.tool_calls;
    assert.equal(calls.length, 1);
    assert.equal(calls[0].function.name, 'get_weather');
    assert.ok(calls[0].function.arguments.startsWith('{"city": "'), calls[0].function.arguments);
    assert.ok(calls[0].function.arguments.length > '{"city": "'.length, 'the model went on writing arguments');
    const s = await streamed(oa, body);
    assert.equal(s.finish, 'length');
    assert.deepEqual(shape(s.calls), shape(calls));
    assert.equal(s.content, r.choices[0].message.content ?? '');
  });

  test('parallel_tool_calls false: the first call ends the answer', async () => {
    const forced = `${B}${call('get_weather', '{"city": "Paris"}')}\n${call('get_time', '{"city": "Rome"}')}${E}${EOS}`;
    const body = { model: MODEL_NAME, messages: USER, tools: [WEATHER, TIME], temperature: 0, parallel_tool_calls: false,
      tandem_test_forced_output: forced };
    const r = await oa.chat.completions.create(body);
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(shape(r.choices[0].message.tool_calls), [{ type: 'function', name: 'get_weather', arguments: '{"city": "Paris"}' }]);
    const all = (await srv.tokenize(forced)).length;
    assert.ok(r.usage.completion_tokens < all, `generation stopped after the first call (${r.usage.completion_tokens} of ${all})`);
    const s = await streamed(oa, body);
    assert.deepEqual(shape(s.calls), shape(r.choices[0].message.tool_calls));
  });

  test('unknown function names and invalid JSON come back as written; a call without a name is content', async () => {
    const forced = `${B}${call('no_such_tool', '{broken')}${E}${EOS}`;
    const r = await oa.chat.completions.create({ model: MODEL_NAME, messages: USER, tools: [WEATHER], temperature: 0,
      tandem_test_forced_output: forced });
    assert.deepEqual(shape(r.choices[0].message.tool_calls), [{ type: 'function', name: 'no_such_tool', arguments: '{broken' }]);
    const nameless = await oa.chat.completions.create({ model: MODEL_NAME, messages: USER, tools: [WEATHER], temperature: 0,
      tandem_test_forced_output: `${B}${CB}function${SEP}\n\`\`\`json\n{}\n\`\`\`${CE}${E}${EOS}` });
    assert.equal(nameless.choices[0].message.tool_calls, undefined);
    assert.equal(nameless.choices[0].finish_reason, 'stop');
    assert.ok(nameless.choices[0].message.content.includes('{}'), nameless.choices[0].message.content);
    assert.ok(!/[｜▁]/.test(nameless.choices[0].message.content));
  });

  test('without tools the markers are not parsed and never shown; tool_choice none bans the call tokens', async () => {
    const forced = `${B}${call('get_weather', '{"city": "Paris"}')}${E}${EOS}`;
    const r = await chat({ messages: USER, tandem_test_forced_output: forced });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.tool_calls, undefined);
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    assert.ok(!/[｜▁]/.test(r.json.choices[0].message.content), r.json.choices[0].message.content);
    // +100 on the call-opening token makes the model write it every step, unless tool_choice is none.
    const bias = { [id[B]]: 100 };
    const on = await chat({ messages: USER, tools: [WEATHER], logit_bias: bias, max_tokens: 4, logprobs: true });
    assert.deepEqual(on.json.choices[0].logprobs.content.map((t) => t.token), [B, B, B, B]);
    assert.equal(on.json.choices[0].message.content, '', 'markers are not content');
    const off = await chat({ messages: USER, tools: [WEATHER], tool_choice: 'none', logit_bias: bias, max_tokens: 4, logprobs: true });
    assert.equal(off.status, 200, off.text);
    const tokens = off.json.choices[0].logprobs.content.map((t) => t.token);
    assert.equal(tokens.length, 4);
    assert.ok(!tokens.includes(B) && !tokens.includes(CB), `tool_choice none: ${JSON.stringify(tokens)}`);
    assert.equal(off.json.choices[0].message.tool_calls, undefined);
  });

  test('validation: 400 naming the field', async () => {
    const bad = async (body, param, re) => {
      await assert.rejects(oa.chat.completions.create({ model: MODEL_NAME, max_tokens: 1, ...body }), (e) => {
        assert.equal(e.status, 400, `${JSON.stringify(body)}: ${e.message}`);
        assert.equal(e.param, param, `${JSON.stringify(body)}: ${e.message}`);
        if (re) assert.match(e.message, re);
        return true;
      });
    };
    const calls = [{ id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{}' } }];
    await bad({ messages: [...USER, { role: 'tool', tool_call_id: 'call_a', content: 'x' }] }, 'messages[1]', /tool_calls/);
    await bad({ messages: [...USER, { role: 'assistant', content: null, tool_calls: calls }, { role: 'tool', content: 'x' }] },
      'messages[2].tool_call_id');
    await bad({ messages: [...USER, { role: 'assistant', content: null, tool_calls: calls },
      { role: 'tool', tool_call_id: 'call_z', content: 'x' }] }, 'messages[2].tool_call_id', /call_z/);
    await bad({ messages: [...USER, { role: 'assistant', tool_calls: [{ ...calls[0], function: { name: 'f', arguments: { a: 1 } } }] }] },
      'messages[1].tool_calls[0].function.arguments', /string/);
    await bad({ messages: [...USER, { role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] }] },
      'messages[1].tool_calls[0].id');
    await bad({ messages: USER, tools: [{ type: 'function', function: { name: 'get weather' } }] }, 'tools[0].function.name');
    await bad({ messages: USER, tools: [WEATHER, WEATHER] }, 'tools[1].function.name', /two tools/);
    await bad({ messages: USER, tools: [{ type: 'web_search' }] }, 'tools[0].type');
    await bad({ messages: USER, tools: [WEATHER], tool_choice: 'sometimes' }, 'tool_choice');
    await bad({ messages: USER, tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'get_time' } } }, 'tool_choice',
      /not in 'tools'/);
    await bad({ messages: USER, tool_choice: 'required' }, 'tool_choice', /needs 'tools'/);
    await bad({ messages: USER, tools: [WEATHER], parallel_tool_calls: 'no' }, 'parallel_tool_calls');
    await bad({ messages: USER, functions: [{ name: 'f' }] }, 'functions');
  });

  test('Ollama /api/chat: tools, tool_calls with object arguments, tool messages; done_reason stop', async () => {
    const forced = `${B}${call('get_weather', '{"city": "Paris"}')}\n${call('get_time', '{"city": "Rome"}')}${E}${EOS}`;
    const req = { model: MODEL_NAME, messages: USER, tools: [WEATHER, TIME], options: { temperature: 0 },
      tandem_test_forced_output: forced };
    const r = await ol.chat({ ...req, stream: false });
    assert.equal(r.done_reason, 'stop');
    assert.deepEqual(r.message.tool_calls, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } },
      { function: { name: 'get_time', arguments: { city: 'Rome' } } }]);
    assert.equal(r.message.content, '');
    // Streamed: each call whole, in the part where it ended.
    const parts = [];
    for await (const p of await ol.chat({ ...req, stream: true })) parts.push(p);
    assert.deepEqual(parts.flatMap((p) => p.message.tool_calls ?? []), r.message.tool_calls);
    assert.equal(parts.at(-1).done_reason, 'stop');
    // The history goes back: the calls and the tool results (matched by tool_name) render as the template does.
    const history = [...USER, r.message, { role: 'tool', tool_name: 'get_time', content: 'noon' },
      { role: 'tool', content: 'sunny' }];
    const next = await ol.chat({ model: MODEL_NAME, messages: history, tools: [WEATHER, TIME], stream: false,
      options: { temperature: 0, num_predict: 3 } });
    assert.equal(next.done, true);
    const openaiHistory = [...USER, { role: 'assistant', content: null, tool_calls: [
      { id: 'a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: 'b', type: 'function', function: { name: 'get_time', arguments: '{"city":"Rome"}' } }] },
    { role: 'tool', tool_call_id: 'b', content: 'noon' }, { role: 'tool', tool_call_id: 'a', content: 'sunny' }];
    const o = await oa.chat.completions.create({ model: MODEL_NAME, messages: openaiHistory, tools: [WEATHER, TIME],
      max_tokens: 3, temperature: 0 });
    assert.equal(next.prompt_eval_count, o.usage.prompt_tokens, 'the same prompt as the OpenAI history');
    assert.equal(next.message.content, o.choices[0].message.content ?? '');
    await assert.rejects(ol.chat({ model: MODEL_NAME, messages: [...USER, { role: 'tool', content: 'x' }], stream: false }),
      (e) => e.status_code === 400 && /tool/.test(e.error));
  });
});

describe('tool calling: Qwen3-MoE fixture', { skip: H.SKIP }, () => {
  let srv;
  let oa;
  before(async () => {
    srv = await H.startServer(FLAGS, { fixtureDir: QWEN_DIR });
    oa = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });
  });
  after(async () => { await srv?.stop(); });
  const hermes = (name, args) => `<tool_call>\n{"name": "${name}", "arguments": ${args}}\n</tool_call>`;

  test('the template renders the tools in its system turn and the tool history', async () => {
    const r = await srv.post('/apply-template', { model: MODEL_NAME, messages: [
      ...USER, { role: 'assistant', content: null, tool_calls: [
        { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_a', content: 'sunny' }], tools: [WEATHER] });
    assert.equal(r.status, 200, r.text);
    const p = r.json.prompt;
    assert.ok(p.startsWith('<|im_start|>system\n# Tools'), p);
    assert.ok(p.includes(`<tools>\n${JSON.stringify(WEATHER).replaceAll(',', ', ').replaceAll(':', ': ')}\n</tools>`), p);
    assert.ok(p.includes(`<|im_start|>assistant\n${hermes('get_weather', '{"city": "Paris"}')}<|im_end|>`), p);
    assert.ok(p.includes('<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>'), p);
    const none = await srv.post('/apply-template', { model: MODEL_NAME, messages: USER, tools: [WEATHER], tool_choice: 'none' });
    assert.ok(!none.json.prompt.includes('<tools>'));
  });

  test('Hermes calls after reasoning: parsed, streamed the same, greedy continuation included', async () => {
    const forced = `<think>\nThe user wants weather.\n</think>\n\nChecking both.\n${hermes('get_weather', '{"city": "Paris"}')}\n` +
      `${hermes('get_weather', '{"city": "Rome", "unit": "c"}')}<|im_end|>`;
    const body = { model: MODEL_NAME, messages: USER, tools: [WEATHER], temperature: 0, tandem_test_forced_output: forced };
    const r = await oa.chat.completions.create(body);
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.reasoning_content.trim(), 'The user wants weather.');
    assert.equal(m.content.trim(), 'Checking both.');  // (what follows </think> keeps its line breaks, as without tools)
    assert.deepEqual(shape(m.tool_calls), [{ type: 'function', name: 'get_weather', arguments: '{"city": "Paris"}' },
      { type: 'function', name: 'get_weather', arguments: '{"city": "Rome", "unit": "c"}' }]);
    const s = await streamed(oa, body);
    assert.deepEqual(shape(s.calls), shape(m.tool_calls));
    assert.equal(s.content, m.content);
    for (const c of s.chunks) assert.ok(!(c.choices[0]?.delta?.content ?? '').includes('<tool'), JSON.stringify(c));
    // Cut inside the arguments: the model goes on by itself; both ways agree.
    const cut = { ...body, max_tokens: 24, tandem_test_forced_output: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "' };
    const a = await oa.chat.completions.create(cut);
    const b = await streamed(oa, cut);
    assert.equal(a.choices[0].finish_reason, 'length');
    assert.equal(a.choices[0].message.tool_calls.length, 1);
    assert.ok(a.choices[0].message.tool_calls[0].function.arguments.startsWith('{"city": "'));
    assert.deepEqual(shape(b.calls), shape(a.choices[0].message.tool_calls));
    assert.equal(b.content, a.choices[0].message.content ?? '');
  });

  test('a <tool_call> block that is not a call stays content; tool_choice none bans <tool_call>', async () => {
    const r = await oa.chat.completions.create({ model: MODEL_NAME, messages: USER, tools: [WEATHER], temperature: 0,
      tandem_test_forced_output: 'See <tool_call>not json</tool_call> done<|im_end|>' });
    assert.equal(r.choices[0].message.content, 'See <tool_call>not json</tool_call> done');
    assert.equal(r.choices[0].message.tool_calls, undefined);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const [open] = await srv.tokenize('<tool_call>');
    const off = await srv.post('/v1/chat/completions', { model: MODEL_NAME, messages: USER, tools: [WEATHER], tool_choice: 'none',
      logit_bias: { [open]: 100 }, max_tokens: 3, temperature: 0, logprobs: true });
    assert.equal(off.status, 200, off.text);
    assert.ok(!off.json.choices[0].logprobs.content.some((t) => t.token === '<tool_call>'));
    const on = await srv.post('/v1/chat/completions', { model: MODEL_NAME, messages: USER, tools: [WEATHER],
      logit_bias: { [open]: 100 }, max_tokens: 3, temperature: 0, logprobs: true });
    assert.deepEqual(on.json.choices[0].logprobs.content.map((t) => t.token), ['<tool_call>', '<tool_call>', '<tool_call>']);
  });
});

// Forced calls: tool_choice "required" or naming a function. The grammar (the family's call frame around the
// tool's parameters schema) makes the random-weight model write exactly one call whose arguments parse and match
// the schema, greedy or sampled, streamed or not.
const ORDER = {
  type: 'function',
  function: {
    name: 'place_order',
    description: 'Order items',
    parameters: {
      type: 'object',
      properties: {
        order: { type: 'object', properties: { id: { type: 'integer' }, items: { type: 'array', items: { type: 'string',
          enum: ['apple', 'pear', 'fig'] }, minItems: 1, maxItems: 3 }, note: { type: 'string', maxLength: 12 } },
        required: ['id', 'items'] },
        priority: { enum: ['low', 'high'] },
        express: { type: 'boolean' },
      },
      required: ['order', 'priority'],
    },
  },
};
const NO_PARAMS = { type: 'function', function: { name: 'ping' } };

// A validator for the schema keywords these tools use (an independent check of what the grammar enforces).
function validate(v, s, at = '#') {
  const fail = (why) => assert.fail(`${at}: ${why}: ${JSON.stringify(v)}`);
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) fail(`not in ${JSON.stringify(s.enum)}`);
  const type = s.type ?? (s.properties ? 'object' : undefined);
  if (type === 'object') {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail('not an object');
    for (const k of s.required ?? []) if (!(k in v)) fail(`missing ${k}`);
    if (s.properties) {
      for (const [k, x] of Object.entries(v)) {
        if (!(k in s.properties)) fail(`unlisted key ${k}`);
        validate(x, s.properties[k], `${at}/${k}`);
      }
    }
  } else if (type === 'array') {
    if (!Array.isArray(v)) fail('not an array');
    if (s.minItems !== undefined && v.length < s.minItems) fail('too few items');
    if (s.maxItems !== undefined && v.length > s.maxItems) fail('too many items');
    v.forEach((x, i) => validate(x, s.items ?? {}, `${at}/${i}`));
  } else if (type === 'string') {
    if (typeof v !== 'string') fail('not a string');
    if (s.maxLength !== undefined && [...v].length > s.maxLength) fail('too long');
  } else if (type === 'integer') {
    if (!Number.isInteger(v)) fail('not an integer');
  } else if (type === 'boolean') {
    if (typeof v !== 'boolean') fail('not a boolean');
  }
}

for (const family of ['DeepSeek-V3', 'Qwen3-MoE']) {
  describe(`forced tool calls: ${family} fixture`, { skip: H.SKIP }, () => {
    let srv;
    let oa;
    before(async () => {
      srv = await H.startServer(['--max_new_tokens', '200', '--cache_lens', '4096', '--chunk_size', '256'],
        family === 'Qwen3-MoE' ? { fixtureDir: QWEN_DIR } : {});
      oa = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });
    });
    after(async () => { await srv?.stop(); });
    const TOOLS = [WEATHER, ORDER, TIME, NO_PARAMS];
    const schemaOf = (name) => TOOLS.find((t) => t.function.name === name).function.parameters ?? { type: 'object' };

    // One forced call: non-streamed and streamed (same seed: the same call), arguments valid for the named tool.
    const forced = async (body, allowed) => {
      const req = { model: MODEL_NAME, messages: USER, tools: TOOLS, max_tokens: 130, ...body };
      const r = await oa.chat.completions.create(req);
      const ch = r.choices[0];
      assert.equal(ch.finish_reason, 'tool_calls', JSON.stringify(ch));
      assert.equal(ch.message.tool_calls?.length, 1, JSON.stringify(ch.message));
      assert.ok(!ch.message.content, `no content beside the forced call: ${JSON.stringify(ch.message.content)}`);
      const [c] = ch.message.tool_calls;
      assert.ok(c.id.startsWith('call_'));
      assert.equal(c.type, 'function');
      assert.ok(allowed.includes(c.function.name), c.function.name);
      validate(JSON.parse(c.function.arguments), schemaOf(c.function.name));
      const s = await streamed(oa, req);
      assert.equal(s.finish, 'tool_calls');
      assert.equal(s.content, '');
      assert.deepEqual(shape(s.calls), shape(ch.message.tool_calls), 'streamed fragments assemble to the same call');
      return c;
    };

    test('a named function: greedy and sampled, nested object, enum, array arguments valid', async () => {
      const named = (name) => ({ type: 'function', function: { name } });
      const names = new Set();
      for (const name of ['place_order', 'get_weather', 'ping']) {
        names.add((await forced({ tool_choice: named(name), temperature: 0 }, [name])).function.name);
        for (const seed of [1]) await forced({ tool_choice: named(name), temperature: 1, seed }, [name]);
      }
      assert.equal(names.size, 3);
    });

    test('required: one call of one of the tools, greedy and sampled', async () => {
      const all = TOOLS.map((t) => t.function.name);
      await forced({ tool_choice: 'required', temperature: 0 }, all);
      for (let seed = 1; seed <= 3; ++seed) await forced({ tool_choice: 'required', temperature: 1, seed }, all);
      // parallel_tool_calls does not change a forced answer: still one call.
      await forced({ tool_choice: 'required', parallel_tool_calls: true, temperature: 1, seed: 9 }, all);
      // One tool only: required is that tool.
      await forced({ tools: [ORDER], tool_choice: 'required', temperature: 1, seed: 3 }, ['place_order']);
    });

    test('refusals: max_tokens below the shortest call, unsupported parameter keywords, JSON response_format', async () => {
      const bad = async (body, param, re) => {
        const r = await srv.post('/v1/chat/completions', { model: MODEL_NAME, messages: USER, tools: TOOLS, ...body });
        assert.equal(r.status, 400, r.text);
        assert.equal(r.json.error.param, param, r.text);
        assert.match(r.json.error.message, re);
      };
      await bad({ tool_choice: 'required', max_tokens: 8 }, 'max_tokens', /too small for the forced tool call/);
      await bad({ tool_choice: { type: 'function', function: { name: 'place_order' } }, max_tokens: 30 }, 'max_tokens',
        /at least \d+ tokens/);
      const patterned = { type: 'function', function: { name: 'lookup', parameters: { type: 'object',
        properties: { code: { type: 'string', pattern: '^[A-Z]+$' } } } } };
      await bad({ tools: [WEATHER, patterned], tool_choice: 'required' }, 'tools[1].function.parameters', /'lookup'.*'pattern'/);
      await bad({ tools: [WEATHER, patterned], tool_choice: { type: 'function', function: { name: 'lookup' } } },
        'tools[1].function.parameters', /'lookup'.*'pattern'/);
      await bad({ tool_choice: 'required', response_format: { type: 'json_object' } }, 'tool_choice', /response_format/);
      // The same schema is fine where nothing is forced (the model is only told about it), and for another tool.
      const auto = await srv.post('/v1/chat/completions', { model: MODEL_NAME, messages: USER, tools: [WEATHER, patterned],
        max_tokens: 2 });
      assert.equal(auto.status, 200, auto.text);
      const other = await srv.post('/v1/chat/completions', { model: MODEL_NAME, messages: USER, tools: [WEATHER, patterned],
        tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 100, temperature: 0 });
      assert.equal(other.status, 200, other.text);
      assert.equal(other.json.choices[0].message.tool_calls[0].function.name, 'get_weather');
    });
  });
}
