// Constrained decoding (issue 13, feature 2): response_format json_object / json_schema on /v1/chat/completions
// and /v1/completions through the official `openai` client, and Ollama's `format` through the `ollama` client, on
// random-weight fixture models. Every answer must JSON.parse and validate against its schema (a validator for the
// supported subset below), greedy and sampled, streamed and not, with max_tokens down to the shortest document;
// unsupported schema keywords are 400s naming the keyword.
// Run: TANDEM_BIN=build/tandem node --test tests/server/constrained.test.mjs
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { existsSync } from 'node:fs';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import * as H from './lib/harness.mjs';

const { MODEL_NAME } = H;
const MESSAGES = [{ role: 'user', content: 'Describe a person as JSON.' }];

// --- a validator for the supported JSON-schema subset (plus the server's policy: no keys outside `properties`) ---
function deref(s, root) {
  if (s && typeof s === 'object' && typeof s.$ref === 'string') {
    return s.$ref.slice(2).split('/').filter((p) => p !== '').reduce((o, k) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], root);
  }
  return s;
}
const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
function typeMatches(v, t) {
  if (t === 'integer') return Number.isInteger(v);
  if (t === 'number') return typeof v === 'number' && Number.isFinite(v);
  return typeOf(v) === t;
}
export function validate(v, schemaIn, root = schemaIn, at = '$') {
  const s = deref(schemaIn, root);
  if (s === true || s === undefined) return [];
  if (s === false) return [`${at}: no value allowed`];
  if (s.anyOf) return s.anyOf.some((alt) => validate(v, alt, root, at).length === 0) ? [] : [`${at}: no anyOf branch matches`];
  const errs = [];
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  if ('const' in s && !same(v, s.const)) errs.push(`${at}: not the const`);
  if (s.enum && !s.enum.some((e) => same(e, v))) errs.push(`${at}: not in enum`);
  if (s.type) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => typeMatches(v, t))) errs.push(`${at}: ${JSON.stringify(v)} is not ${types.join('|')}`);
  }
  if (typeOf(v) === 'object') {
    const props = s.properties || {};
    const listed = Object.keys(props).length > 0 || (s.required || []).length > 0;
    for (const [k, val] of Object.entries(v)) {
      if (k in props) errs.push(...validate(val, props[k], root, `${at}.${k}`));
      else if (listed && !(s.required || []).includes(k)) errs.push(`${at}: unlisted key ${k}`);
      else if (s.additionalProperties !== undefined) errs.push(...validate(val, s.additionalProperties, root, `${at}.${k}`));
    }
    for (const r of s.required || []) if (!(r in v)) errs.push(`${at}: missing ${r}`);
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errs.push(`${at}: fewer than ${s.minItems} items`);
    if (s.maxItems !== undefined && v.length > s.maxItems) errs.push(`${at}: more than ${s.maxItems} items`);
    if (s.items !== undefined) v.forEach((item, i) => errs.push(...validate(item, s.items, root, `${at}[${i}]`)));
  }
  if (typeof v === 'string') {
    const n = [...v].length;
    if (s.minLength !== undefined && n < s.minLength) errs.push(`${at}: shorter than ${s.minLength}`);
    if (s.maxLength !== undefined && n > s.maxLength) errs.push(`${at}: longer than ${s.maxLength}`);
  }
  return errs;
}

const SCHEMAS = {
  person: {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 24 },
      age: { type: 'integer' },
      address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'integer' } }, required: ['city', 'zip'],
        additionalProperties: false },
      tags: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
    },
    required: ['name', 'age', 'address'],
    additionalProperties: false,
  },
  items: {
    type: 'object',
    properties: { items: { type: 'array', minItems: 1, maxItems: 4,
      items: { type: 'object', properties: { id: { type: 'integer' }, score: { type: 'number' } }, required: ['id', 'score'] } } },
    required: ['items'],
  },
  enums: {
    type: 'object',
    properties: { color: { enum: ['red', 'green', 'blue', 7, null] }, version: { const: 2 }, mode: { type: 'string', const: 'strict' },
      size: { type: 'string', enum: ['S', 'M', 'L'] } },
    required: ['color', 'version', 'mode', 'size'],
  },
  anyof: {
    type: 'object',
    properties: { value: { anyOf: [{ type: 'string', maxLength: 5 }, { type: 'integer' }, { type: 'null' },
      { type: 'object', properties: { k: { type: 'boolean' } }, required: ['k'] }] },
    pair: { anyOf: [{ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] },
      { type: 'object', properties: { a: { type: 'string' }, b: { type: 'null' } }, required: ['a', 'b'] }] } },
    required: ['value', 'pair'],
  },
  scalars: {
    type: 'object',
    properties: { n: { type: ['number', 'null'] }, flag: { type: 'boolean' }, nothing: { type: 'null' }, ratio: { type: 'number' } },
    required: ['n', 'flag', 'nothing', 'ratio'],
  },
  recursive: {
    $defs: { node: { type: 'object', properties: { v: { type: 'integer' },
      kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['v'] } },
    $ref: '#/$defs/node',
  },
};

function checkJson(text, schema, what) {
  let value;
  assert.doesNotThrow(() => { value = JSON.parse(text); }, `${what}: not JSON: ${JSON.stringify(text)}`);
  if (schema) assert.deepEqual(validate(value, schema), [], `${what}: ${text}`);
  else assert.equal(typeOf(value), 'object', `${what}: json_object must be an object: ${text}`);
  assert.doesNotMatch(text.replace(/"(?:[^"\\]|\\.)*"/g, '""'), /\s/, `${what}: whitespace outside strings: ${text}`);
  return value;
}

const formatOf = (name) => (name === 'json_object' ? { type: 'json_object' }
  : { type: 'json_schema', json_schema: { name, schema: SCHEMAS[name], strict: true } });

// Runs `jobs` (functions returning promises) four at a time (the server's batch).
async function inBatches(jobs, n = 4) {
  for (let i = 0; i < jobs.length; i += n) await Promise.all(jobs.slice(i, i + n).map((j) => j()));
}

// The shortest max_tokens the server accepts for a response_format (its 400 says it).
async function neededTokens(server, format) {
  const r = await server.post('/v1/chat/completions', { model: MODEL_NAME, messages: MESSAGES, max_tokens: 1,
    response_format: format });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.param, 'max_tokens');
  const m = /at least (\d+) tokens/.exec(r.json.error.message);
  assert.ok(m, r.json.error.message);
  return Number(m[1]);
}

describe('constrained decoding: OpenAI API', { skip: H.SKIP, timeout: 600_000 }, () => {
  let server, client;
  before(async () => {
    server = await H.startServer(['--max_new_tokens', '512', '--max_batch_size', '4']);
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 300_000 });
  });
  after(async () => { await server?.stop(); });

  const chat = (name, extra) => client.chat.completions.create({ model: MODEL_NAME, messages: MESSAGES,
    response_format: formatOf(name), ...extra });

  async function streamed(name, extra) {
    const stream = await chat(name, { ...extra, stream: true });
    let text = '', finish = null, reasoning = '';
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      text += c.delta?.content ?? '';
      reasoning += c.delta?.reasoning_content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
    return { text, finish, reasoning };
  }

  for (const name of ['json_object', ...Object.keys(SCHEMAS)]) {
    test(`${name}: greedy and sampled (seeds), streamed and not: JSON that validates, finish_reason stop`, async () => {
      const schema = name === 'json_object' ? null : SCHEMAS[name];
      const jobs = [];
      const runs = [{ temperature: 0, max_tokens: 96 }, ...[1, 2, 3, 4, 5].map((seed) => ({ temperature: 1, seed, max_tokens: 64 + seed * 8 }))];
      const texts = {};
      for (const opts of runs) {
        jobs.push(async () => {
          const r = await chat(name, opts);
          const c = r.choices[0];
          assert.equal(c.finish_reason, 'stop', `${name} ${JSON.stringify(opts)}: ${c.message.content}`);
          checkJson(c.message.content, schema, `${name} ${JSON.stringify(opts)}`);
          assert.ok(r.usage.completion_tokens <= opts.max_tokens);
          texts[JSON.stringify(opts)] = c.message.content;
        });
        jobs.push(async () => {
          const s = await streamed(name, opts);
          assert.equal(s.finish, 'stop', `${name} streamed ${JSON.stringify(opts)}: ${s.text}`);
          checkJson(s.text, schema, `${name} streamed ${JSON.stringify(opts)}`);
          texts[`stream ${JSON.stringify(opts)}`] = s.text;
        });
      }
      await inBatches(jobs);
      // Streaming changes nothing, and seeds do change the sampled document.
      for (const opts of runs) assert.equal(texts[`stream ${JSON.stringify(opts)}`], texts[JSON.stringify(opts)], JSON.stringify(opts));
      const sampled = new Set(runs.slice(1).map((o) => texts[JSON.stringify(o)]));
      assert.ok(sampled.size > 1, `five seeds gave one document: ${[...sampled]}`);
    });
  }

  test('small max_tokens: from the shortest document up, always complete; below it a 400', async () => {
    for (const name of ['json_object', 'person', 'items', 'enums', 'anyof', 'scalars']) {
      const need = await neededTokens(server, formatOf(name));
      const jobs = [0, 1, 3, 9].map((extra) => async () => {
        const r = await chat(name, { temperature: 1, seed: 100 + extra, max_tokens: need + extra });
        assert.equal(r.choices[0].finish_reason, 'stop', `${name} max_tokens ${need + extra}`);
        checkJson(r.choices[0].message.content, name === 'json_object' ? null : SCHEMAS[name], `${name} max_tokens ${need + extra}`);
        assert.ok(r.usage.completion_tokens <= need + extra);
      });
      await inBatches(jobs);
      const under = await server.post('/v1/chat/completions', { model: MODEL_NAME, messages: MESSAGES, max_tokens: need - 1,
        response_format: formatOf(name) });
      assert.equal(under.status, 400, under.text);
      assert.equal(under.json.error.param, 'max_tokens');
    }
  });

  test('/v1/completions takes response_format too; logprobs cover the constrained tokens', async () => {
    const r = await client.completions.create({ model: MODEL_NAME, prompt: 'JSON:', max_tokens: 80, temperature: 1, seed: 9,
      response_format: formatOf('enums') });
    assert.equal(r.choices[0].finish_reason, 'stop');
    checkJson(r.choices[0].text, SCHEMAS.enums, 'completions');
    // (A schema without strings: token texts of partial UTF-8 characters would not join back into the content.)
    const lp = await chat('scalars', { temperature: 1, seed: 4, max_tokens: 80, logprobs: true, top_logprobs: 3 });
    const content = lp.choices[0].logprobs.content;
    // The tokens spell the document, then the end token (reported like any generated token).
    const joined = content.map((t) => t.token).join('');
    assert.ok(joined.startsWith(lp.choices[0].message.content), joined);
    assert.match(joined.slice(lp.choices[0].message.content.length), /^(<[^>]*>)?$/, joined);
    for (const t of content) {
      assert.ok(Number.isFinite(t.logprob) && t.logprob <= 0, JSON.stringify(t));
      assert.ok(t.top_logprobs.length >= 1 && t.top_logprobs.every((a) => Number.isFinite(a.logprob)), JSON.stringify(t));
    }
    // The first token of the document can only begin the object: every alternative does too.
    assert.ok(content[0].top_logprobs.every((a) => a.token.startsWith('{')), JSON.stringify(content[0].top_logprobs));
  });

  test('concurrent requests with different formats share steps and each keeps its own grammar', async () => {
    const names = ['json_object', 'person', 'items', 'enums', 'anyof', 'scalars', 'recursive', 'person'];
    const results = await Promise.all(names.map((name, i) => chat(name, { temperature: 1, seed: 50 + i, max_tokens: 72 })));
    results.forEach((r, i) => checkJson(r.choices[0].message.content, names[i] === 'json_object' ? null : SCHEMAS[names[i]],
      `concurrent ${names[i]}`));
  });

  test('unsupported or malformed schemas are 400s naming the keyword (param response_format)', async () => {
    const refused = async (schema, keyword) => {
      const r = await server.post('/v1/chat/completions', { model: MODEL_NAME, messages: MESSAGES, max_tokens: 40,
        response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
      assert.equal(r.status, 400, `${JSON.stringify(schema)}: ${r.text}`);
      assert.deepEqual(H.errorEnvelopeProblems(r.json), []);
      assert.equal(r.json.error.param, 'response_format');
      if (keyword) assert.match(r.json.error.message, new RegExp(`'${keyword.replace('$', '\\$')}'`), r.json.error.message);
    };
    for (const keyword of ['pattern', 'format', 'minimum', 'maximum', 'multipleOf', 'uniqueItems', 'patternProperties',
      'propertyNames', 'minProperties']) {
      await refused({ type: 'object', properties: { x: { type: 'string', [keyword]: keyword === 'pattern' ? 'a+' : 1 } } }, keyword);
    }
    for (const keyword of ['oneOf', 'allOf']) await refused({ [keyword]: [{ type: 'string' }] }, keyword);
    await refused({ not: { type: 'string' } }, 'not');
    await refused({ if: { type: 'string' }, then: { minLength: 1 } }, 'if');
    await refused({ type: 'object', properties: { a: { $ref: '#/$defs/missing' } } }, '$ref');
    await refused({ type: 'strings' }, 'type');
    await refused({ type: 'string', minLength: 4, maxLength: 2 });
    await refused({ type: 'string', enum: [1, 2] });
    // The response_format object itself.
    for (const format of [{ type: 'yaml' }, { type: 'json_schema' }, { type: 'json_schema', json_schema: { schema: 3 } },
      { type: 'json_schema', json_schema: { name: 5, schema: {} } }, 'json', { type: 'json_schema', json_schema: { schema: { type: 'object' }, strict: 'yes' } }]) {
      const r = await server.post('/v1/chat/completions', { model: MODEL_NAME, messages: MESSAGES, response_format: format });
      assert.equal(r.status, 400, `${JSON.stringify(format)}: ${r.text}`);
      assert.equal(r.json.error.param, 'response_format');
    }
    // Still serving.
    const ok = await chat('json_object', { temperature: 0, max_tokens: 16 });
    checkJson(ok.choices[0].message.content, null, 'after the refusals');
  });
});

describe('constrained decoding: Ollama format', { skip: H.SKIP, timeout: 300_000 }, () => {
  let server, ol;
  before(async () => {
    server = await H.startServer(['--max_new_tokens', '256']);
    ol = new Ollama({ host: server.url });
  });
  after(async () => { await server?.stop(); });

  test('format "json" and a schema on /api/chat and /api/generate, streamed and not', async () => {
    const a = await ol.chat({ model: MODEL_NAME, messages: MESSAGES, format: 'json', stream: false,
      options: { temperature: 1, seed: 3, num_predict: 48 } });
    assert.equal(a.done_reason, 'stop');
    checkJson(a.message.content, null, '/api/chat json');
    const b = await ol.generate({ model: MODEL_NAME, prompt: 'JSON please', format: SCHEMAS.person, stream: false,
      options: { temperature: 1, seed: 4, num_predict: 96 } });
    assert.equal(b.done_reason, 'stop');
    checkJson(b.response, SCHEMAS.person, '/api/generate schema');
    let text = '', last;
    for await (const part of await ol.chat({ model: MODEL_NAME, messages: MESSAGES, format: SCHEMAS.anyof, stream: true,
      options: { temperature: 1, seed: 5, num_predict: 64 } })) {
      text += part.message.content;
      last = part;
    }
    assert.equal(last.done_reason, 'stop');
    checkJson(text, SCHEMAS.anyof, '/api/chat streamed schema');
    const greedy = await ol.generate({ model: MODEL_NAME, prompt: 'x', format: SCHEMAS.scalars, stream: false,
      options: { temperature: 0, num_predict: 64 } });
    checkJson(greedy.response, SCHEMAS.scalars, '/api/generate greedy');
  });

  test('bad formats are {"error"} 400s naming the keyword', async () => {
    for (const [format, re] of [['yaml', /'format'/], [{ type: 'string', pattern: 'x' }, /'pattern'/], [{ oneOf: [] }, /'oneOf'/],
      [5, /'format'/], [{ type: 'object', properties: { a: { format: 'date' } } }, /'format'/]]) {
      const r = await server.post('/api/chat', { model: MODEL_NAME, messages: MESSAGES, format, stream: false });
      assert.equal(r.status, 400, `${JSON.stringify(format)}: ${r.text}`);
      assert.deepEqual(Object.keys(r.json), ['error']);
      assert.match(r.json.error, re);
    }
    await assert.rejects(ol.generate({ model: MODEL_NAME, prompt: 'x', format: { type: 'object', properties: { a: { minimum: 1 } } },
      stream: false }), (e) => e.status_code === 400 && /minimum/.test(e.error));
  });
});

describe('constrained decoding: --force_think and the Qwen3-MoE fixture', { skip: H.SKIP, timeout: 300_000 }, () => {
  test('with --force_think the document is the content and reasoning stays empty', async () => {
    const server = await H.startServer(['--max_new_tokens', '128', '--force_think']);
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const r = await client.chat.completions.create({ model: MODEL_NAME, messages: MESSAGES, temperature: 1, seed: 8,
        max_tokens: 96, response_format: formatOf('person') });
      checkJson(r.choices[0].message.content, SCHEMAS.person, 'force_think');
      assert.ok(!r.choices[0].message.reasoning_content, JSON.stringify(r.choices[0].message));
      assert.equal(r.choices[0].finish_reason, 'stop');
    } finally {
      await server.stop();
    }
  });

  const qwen = path.join(H.SHARED, 'fixtures/models/tiny-qwen3moe-bf16');
  test('the Qwen3-MoE vocabulary: json_object and a schema', { skip: !existsSync(path.join(qwen, 'model.gguf')) && 'no Qwen3 fixture' }, async () => {
    const port = await H.freePort();
    const server = new H.Server(['serve', '--gguf_path', path.join(qwen, 'model.gguf'), '--model_path', qwen, '--port',
      String(port), '--host', '127.0.0.1', '--served-model-name', MODEL_NAME, '--threads', H.THREADS, '--max_new_tokens', '128'], port);
    try {
      await server.waitHealthy(120_000);
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      for (const [name, seed] of [['json_object', 1], ['items', 2], ['anyof', 3], ['enums', 4]]) {
        const r = await client.chat.completions.create({ model: MODEL_NAME, messages: MESSAGES, temperature: 1, seed,
          max_tokens: 80, response_format: formatOf(name) });
        assert.equal(r.choices[0].finish_reason, 'stop');
        checkJson(r.choices[0].message.content, name === 'json_object' ? null : SCHEMAS[name], `qwen3 ${name}`);
      }
    } finally {
      await server.stop();
    }
  });
});
