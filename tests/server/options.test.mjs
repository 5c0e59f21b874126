// Issue 13 (feature 5 and the "never ignore a field silently" rule): logit_bias and legacy `echo` work; fields
// that would change the answer but are not implemented (n > 1, best_of, suffix, echo with logprobs, unknown
// response formats and schema keywords, the legacy functions API) are refused with a 400 naming
// the field, and so is the test hook tandem_test_forced_output on a server started without --test-hooks. (JSON
// response formats themselves: constrained.test.mjs.)
// Run: TANDEM_BIN=build/tandem node --test tests/server/options.test.mjs
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as H from './lib/harness.mjs';

const { MODEL_NAME } = H;

function assertRefused(r, param, what) {
  assert.equal(r.status, 400, `${what}: status ${r.status}: ${r.text}`);
  assert.deepEqual(H.errorEnvelopeProblems(r.json), [], `${what}: ${r.text}`);
  assert.equal(r.json.error.param, param, `${what}: error.param`);
}

describe('request options', { skip: H.SKIP }, () => {
  let server;
  before(async () => { server = await H.startServer(['--max_new_tokens', '64']); });
  after(async () => { await server?.stop(); });

  const complete = (body) => server.post('/v1/completions', { model: MODEL_NAME, temperature: 0, ...body });

  test('logit_bias: +100 makes a token win every step, -100 bans the greedy choice', async () => {
    const [forced] = (await server.tokenize(' banana')).slice(-1);
    const r = await complete({ prompt: 'The fruit is', max_tokens: 4, logit_bias: { [forced]: 100 } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].text, await server.detokenize([forced, forced, forced, forced]));

    const plain = await complete({ prompt: 'The fruit is', max_tokens: 1 });
    assert.equal(plain.status, 200, plain.text);
    const first = plain.json.choices[0].text;
    const banned = Object.fromEntries((await server.tokenize(first)).map((id) => [id, -100]));
    const without = await complete({ prompt: 'The fruit is', max_tokens: 1, logit_bias: banned });
    assert.equal(without.status, 200, without.text);
    assert.notEqual(without.json.choices[0].text, first, 'banning the greedy token changed nothing');

    // The chat endpoint takes it too.
    const chat = await server.post('/v1/chat/completions', { model: MODEL_NAME, temperature: 0, max_tokens: 3,
      messages: [{ role: 'user', content: 'name a fruit' }], logit_bias: { [forced]: 100 } });
    assert.equal(chat.status, 200, chat.text);
    assert.equal(chat.json.choices[0].message.content, await server.detokenize([forced, forced, forced]));
  });

  test('logit_bias: bad keys, values and token ids are 400', async () => {
    assertRefused(await complete({ prompt: 'x', logit_bias: { 12: 101 } }), 'logit_bias', 'bias over 100');
    assertRefused(await complete({ prompt: 'x', logit_bias: { abc: 1 } }), 'logit_bias', 'non-numeric key');
    assertRefused(await complete({ prompt: 'x', logit_bias: [1, 2] }), 'logit_bias', 'not an object');
    assertRefused(await complete({ prompt: 'x', logit_bias: { 999999999: 5 } }), 'logit_bias', 'id outside the vocabulary');
  });

  test('echo: the prompt comes back before the completion, streamed or not', async () => {
    const prompt = 'Once upon a time';
    const plain = await complete({ prompt, max_tokens: 6 });
    const echoed = await complete({ prompt, max_tokens: 6, echo: true });
    assert.equal(echoed.status, 200, echoed.text);
    assert.equal(echoed.json.choices[0].text, prompt + plain.json.choices[0].text);
    const streamed = await server.stream('/v1/completions', { model: MODEL_NAME, temperature: 0, prompt, max_tokens: 6,
      echo: true });
    assert.equal(streamed.status, 200);
    const text = streamed.events.filter((e) => e.choices).map((e) => e.choices[0].text ?? '').join('');
    assert.equal(text, echoed.json.choices[0].text);
    // A token-id prompt echoes its text.
    const ids = await server.tokenize(prompt);
    const byIds = await complete({ prompt: ids, max_tokens: 6, echo: true });
    assert.equal(byIds.status, 200, byIds.text);
    assert.ok(byIds.json.choices[0].text.startsWith(await server.detokenize(ids)));
  });

  test('fields that would change the answer but are not implemented are refused, never ignored', async () => {
    const chat = (extra) => server.post('/v1/chat/completions', { model: MODEL_NAME, max_tokens: 2,
      messages: [{ role: 'user', content: 'hi' }], ...extra });
    assertRefused(await chat({ n: 2 }), 'n', 'n = 2');
    assertRefused(await chat({ response_format: { type: 'yaml' } }), 'response_format', 'unknown response_format type');
    assertRefused(await chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { pattern: 'a' } } } }),
      'response_format', 'unsupported schema keyword');
    // Forced tool calls work (tools.test.mjs); a budget too small for the shortest call is refused up front.
    assertRefused(await chat({ tool_choice: 'required', tools: [{ type: 'function', function: { name: 'f' } }] }),
      'max_tokens', 'tool_choice required with max_tokens 2');
    assertRefused(await chat({ tool_choice: { type: 'function', function: { name: 'f' } },
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { format: 'uri' } } } } }],
      max_tokens: 100 }), 'tools[0].function.parameters', 'a forced call whose parameters use an unsupported keyword');
    assertRefused(await chat({ functions: [{ name: 'f' }] }), 'functions', 'legacy functions');
    assertRefused(await chat({ function_call: 'auto' }), 'function_call', 'legacy function_call');
    assertRefused(await chat({ tandem_test_forced_output: 'x' }), 'tandem_test_forced_output', 'test hook without --test-hooks');
    assertRefused(await complete({ prompt: 'x', tandem_test_forced_output: 'x' }), 'tandem_test_forced_output',
      'test hook without --test-hooks (completions)');
    assertRefused(await complete({ prompt: 'x', suffix: 'y' }), 'suffix', 'suffix');
    assertRefused(await complete({ prompt: 'x', best_of: 3 }), 'best_of', 'best_of');
    assertRefused(await complete({ prompt: 'x', echo: true, logprobs: 2 }), 'echo', 'echo with logprobs');
    // The accepted spellings of the same fields still work.
    assert.equal((await chat({ response_format: { type: 'text' }, n: 1, tool_choice: 'auto' })).status, 200);
    assert.equal((await chat({ tool_choice: 'none', tools: [{ type: 'function', function: { name: 'f' } }] })).status, 200);
    const forced = await chat({ tool_choice: 'required', tools: [{ type: 'function', function: { name: 'f' } }], max_tokens: 60 });
    assert.equal(forced.status, 200, forced.text);
    assert.equal(forced.json.choices[0].finish_reason, 'tool_calls', forced.text);
    assert.equal(forced.json.choices[0].message.tool_calls[0].function.name, 'f');
    const json = await chat({ response_format: { type: 'json_object' }, max_tokens: 8 });
    assert.equal(json.status, 200, json.text);
    assert.equal(typeof JSON.parse(json.json.choices[0].message.content), 'object');
    assert.equal((await complete({ prompt: 'x', best_of: 1, suffix: null, max_tokens: 2 })).status, 200);
  });
});
