// A failing engine step (a backend operation or the CPU expert runner reporting an error, injected with
// TANDEM_INJECT_FAULT) fails only the requests of that step: a non-streaming request gets HTTP 500 with an
// OpenAI error object, a stream gets an error event, and the server keeps serving, leaking no KV page.
// Run: TANDEM_BIN=build/tandem node --test tests/server/faults.test.mjs
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import * as H from './lib/harness.mjs';

const FLAGS = ['--max_new_tokens', '64', '--cache_lens', '1024', '--chunk_size', '64', '--max_batch_size', '2'];
const ASK = { model: H.MODEL_NAME, messages: [{ role: 'user', content: 'hello' }], max_tokens: 6, temperature: 0 };

async function pagesSettle(srv) {
  const { ok, m } = await srv.waitMetrics((x) => x.get('tandem_kv_pages_used') === 0 && x.get('tandem_requests_running') === 0);
  assert.ok(ok, `KV pages still used: ${m.get('tandem_kv_pages_used')}`);
  return m;
}

describe('fault injection', { skip: H.SKIP }, () => {
  // The fixture has 3 layers: the first step of a request makes attention calls 1-3, the next 4-6, ...
  test('a failed step answers 500 with an error object, then the server serves the next requests', async () => {
    const srv = await H.startServer(FLAGS, { env: { TANDEM_INJECT_FAULT: 'attention:5' } });
    try {
      const failed = await srv.post('/v1/chat/completions', ASK);
      assert.equal(failed.status, 500, failed.text);
      assert.deepEqual(H.errorEnvelopeProblems(failed.json), []);
      assert.equal(failed.json.error.type, 'server_error');
      assert.match(failed.json.error.message, /injected fault in attention/);

      const ok = await srv.post('/v1/chat/completions', ASK);
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json.usage.completion_tokens, 6);
      const again = await srv.post('/v1/chat/completions', ASK);
      assert.equal(again.json.choices[0].message.content, ok.json.choices[0].message.content, 'greedy output changed');

      const m = await pagesSettle(srv);
      assert.equal(m.get('tandem_engine_failed_steps_total'), 1);
      assert.equal(m.get('tandem_requests_server_error_total'), 1);
      assert.ok(srv.alive());
    } finally {
      await srv.stop();
    }
  });

  test('a stream cut by a failed step ends with an error event, not a finish_reason', async () => {
    // Calls 1-3: the prefill step; 4-6, 7-9: two decode steps; 10-12 fails: two tokens were streamed.
    const srv = await H.startServer(FLAGS, { env: { TANDEM_INJECT_FAULT: 'attention:11' } });
    try {
      const r = await fetch(`${srv.url}/v1/chat/completions`, {
        method: 'POST', headers: srv.headers(), body: JSON.stringify({ ...ASK, stream: true }),
      });
      assert.equal(r.status, 200);
      const sse = await H.readSse(r);
      assert.deepEqual(sse.framingErrors, []);
      assert.ok(sse.done, 'the stream ends with data: [DONE]');
      const last = sse.events.at(-1);
      assert.deepEqual(H.errorEnvelopeProblems(last), [], JSON.stringify(last));
      assert.match(last.error.message, /injected fault/);
      assert.ok(!sse.events.some((e) => e.choices?.[0]?.finish_reason), 'no finish_reason on a failed stream');
      const text = sse.events.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');
      assert.ok(sse.events.length >= 3, `tokens streamed before the failure: ${sse.events.length}`);

      // The official client surfaces the error event as an exception.
      const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'none', maxRetries: 0 });
      const ok = await client.chat.completions.create(ASK);
      assert.equal(ok.choices[0].finish_reason, 'length');
      assert.ok(ok.choices[0].message.content.startsWith(text), 'the next request computes the same tokens');
      await pagesSettle(srv);
    } finally {
      await srv.stop();
    }
  });

  test('a failing expert runner fails the step the same way, and concurrent requests of other steps finish', async () => {
    // The fixture's 2 MoE layers: every step submits 2 expert jobs; job 7 is in the 4th step.
    const srv = await H.startServer(FLAGS, { env: { TANDEM_INJECT_FAULT: 'experts:7' } });
    try {
      const results = await Promise.all([0, 1, 2, 3].map((i) => srv.post('/v1/chat/completions',
        { ...ASK, messages: [{ role: 'user', content: `question ${i}` }] })));
      const statuses = results.map((x) => x.status).sort();
      assert.ok(statuses.includes(500), `one step failed: ${statuses}`);
      assert.ok(statuses.filter((s) => s === 500).length <= 2, `only that step's requests fail: ${statuses}`);
      for (const x of results) {
        if (x.status === 500) assert.match(x.json.error.message, /injected fault in experts/);
        else assert.equal(x.status, 200, x.text);
      }
      const m = await pagesSettle(srv);
      assert.equal(m.get('tandem_engine_failed_steps_total'), 1);
      const after = await srv.post('/v1/chat/completions', ASK);
      assert.equal(after.status, 200);
    } finally {
      await srv.stop();
    }
  });
});
