// Bounded loopback load test of `tandem serve`.
//
// 1. 64 concurrent streaming clients, two rounds of LOAD_REQUESTS/2 requests (500 in all), a fifth aborted
//    mid-stream (some before their first event, while still queued). Checks: no crash (/health answers),
//    every completed greedy request gives exactly the text, finish_reason and usage it gives alone, every
//    completed request's usage is consistent with what was streamed, the KV cache and the queues drain
//    (tandem_kv_pages_used 0, tandem_requests_running/waiting 0), and RSS grows at most LOAD_RSS_GROWTH
//    between the end of round 1 and the end of round 2.
// 2. The same traffic on a KV cache too small for the batch (--cache_lens 384): requests get preempted and
//    recomputed, and must still give the same greedy text as alone.
// Env: LOAD_REQUESTS (500), LOAD_CONCURRENCY (64), LOAD_RSS_GROWTH (0.10), LOAD_CACHE_LENS (2048).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as H from './lib/harness.mjs';

const TOTAL = Number(process.env.LOAD_REQUESTS || 500);
const CONCURRENCY = Number(process.env.LOAD_CONCURRENCY || 64);
const RSS_GROWTH = Number(process.env.LOAD_RSS_GROWTH || 0.10);
const ROUNDS = 2;
const COMMON_FLAGS = ['--max_batch_size', '8', '--page_size', '16', '--chunk_size', '256', '--max_new_tokens', '64',
  '--max-queue', '1024'];
const FLAGS = [...COMMON_FLAGS, '--cache_lens', process.env.LOAD_CACHE_LENS || '2048'];
const PRESSURE_FLAGS = [...COMMON_FLAGS, '--cache_lens', '384'];
const PRESSURE_REQUESTS = 150;
const MAX_TOKENS = [8, 12, 16];
// A request that neither ends nor is aborted by then is a failure (a lost request), reported with its state,
// rather than a test that waits for its timeout.
const REQUEST_DEADLINE_MS = 60_000;

// Prompts: chat and completions, some sharing long prefixes (prefix cache), different lengths (up to 252 tokens).
const SYSTEM = 'You are a careful assistant. Answer briefly and precisely, and never invent facts. '.repeat(3);
function prompts() {
  const ref = H.referenceCases();
  const list = [];
  for (let i = 0; i < 6; ++i) {
    list.push({ route: '/v1/chat/completions', body: { messages: [{ role: 'system', content: SYSTEM },
      { role: 'user', content: `Question number ${i}: what is ${i} + ${i * 3}?` }] } });
  }
  list.push({ route: '/v1/chat/completions', body: { messages: ref[1].prompt.messages } });
  list.push({ route: '/v1/chat/completions', body: { messages: ref[2].prompt.messages } });
  for (const c of ref) list.push({ route: '/v1/completions', body: { prompt: c.ids } });
  list.push({ route: '/v1/completions', body: { prompt: 'Once upon a time, in a land far away,' } });
  return list;
}
const P = H.SKIP ? [] : prompts();
const key = (p, mt) => `${p}/${mt}`;

// Concatenated text of a stream, its finish_reason and usage; problems found on the way.
function summarize(res, route) {
  const problems = [...res.framingErrors];
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for (const e of res.events) {
    if (e.usage) { usage = e.usage; continue; }
    const c = e.choices?.[0];
    if (!c) { problems.push(`event without choices: ${JSON.stringify(e)}`); continue; }
    const piece = route === '/v1/completions' ? c.text : c.delta?.content;
    if (typeof piece === 'string' && piece.length) { text += piece; chunks += 1; }
    if (c.finish_reason) {
      if (finish) problems.push('two finish_reasons');
      finish = c.finish_reason;
    }
  }
  return { text, finish, usage, chunks, problems };
}

// Greedy text, finish_reason and usage of every (prompt, max_tokens), one request at a time. Computed once,
// on the first server, so the second scenario also checks that the cache size changes nothing.
let REFS = null;
async function references(srv) {
  if (REFS) return REFS;
  const refs = new Map();
  for (let p = 0; p < P.length; ++p) {
    for (const mt of MAX_TOKENS) {
      const r = await srv.stream(P[p].route, { ...P[p].body, max_tokens: mt, temperature: 0,
        stream_options: { include_usage: true } });
      assert.equal(r.status, 200, r.text);
      const s = summarize(r, P[p].route);
      assert.deepEqual(s.problems, []);
      refs.set(key(p, mt), s);
    }
  }
  REFS = refs;
  return refs;
}

// One round of n streaming requests, `concurrency` at a time; adds to `stats`. Returns the /metrics after it.
async function runRound(srv, refs, rand, n, concurrency, label, stats) {
  const plan = Array.from({ length: n }, (_, i) => ({
    i, p: rand.int(0, P.length - 1), mt: rand.pick(MAX_TOKENS),
    abort: rand.next() < 0.2, abortAfterEvents: rand.int(0, 3), abortDelayMs: rand.int(0, 40),
    sampled: rand.next() < 0.15, seed: rand.int(1, 1e6),
  }));
  let next = 0;
  const t0 = Date.now();
  const before = await srv.metrics();
  let receivedTokens = 0;
  const worker = async () => {
    while (next < plan.length) {
      const job = plan[next++];
      const { route, body } = P[job.p];
      const ac = new AbortController();
      const req = { ...body, max_tokens: job.mt, stream_options: { include_usage: true },
        ...(job.sampled ? { temperature: 0.8, top_p: 0.95, seed: job.seed } : { temperature: 0 }) };
      let timer;
      if (job.abort && job.abortAfterEvents === 0) timer = setTimeout(() => ac.abort(), job.abortDelayMs);
      let timedOut = false;
      const deadline = setTimeout(() => { timedOut = true; ac.abort(); }, REQUEST_DEADLINE_MS);
      const sent = Date.now();
      let first = 0;
      let events = 0;
      let res;
      const lost = () => `${label} job ${job.i}: no end within ${REQUEST_DEADLINE_MS / 1000} s ` +
        `(${events} events received, ${JSON.stringify(job)})`;
      try {
        res = await srv.stream(route, req, { signal: ac.signal, onEvent: (e, idx) => {
          if (!first) first = Date.now();
          events = idx + 1;
          if (job.abort && job.abortAfterEvents > 0 && idx + 1 >= job.abortAfterEvents) ac.abort();
        } });
      } catch (e) {
        if (timedOut) { stats.failures.push(lost()); continue; }
        if (ac.signal.aborted) { stats.aborted += 1; stats.abortedEarly += 1; continue; }
        stats.failures.push(`${label} job ${job.i}: ${e.message}`);
        continue;
      } finally {
        clearTimeout(timer);
        clearTimeout(deadline);
      }
      if (first) stats.maxFirstEventMs = Math.max(stats.maxFirstEventMs, first - sent);
      if (res.status !== 200) {
        stats.failures.push(`${label} job ${job.i}: HTTP ${res.status} ${res.text?.slice(0, 200)}`);
        continue;
      }
      if (res.aborted) {
        if (timedOut) stats.failures.push(lost()); else stats.aborted += 1;
        continue;
      }
      const s = summarize(res, route);
      const what = `${label} job ${job.i} (prompt ${job.p}, max_tokens ${job.mt}${job.sampled ? `, sampled seed ${job.seed}` : ''})`;
      if (!res.done) s.problems.push('no data: [DONE]');
      if (!s.usage) s.problems.push('no usage chunk');
      if (!s.finish) s.problems.push('no finish_reason');
      if (s.usage) {
        const u = s.usage;
        if (u.total_tokens !== u.prompt_tokens + u.completion_tokens) s.problems.push(`usage sum ${JSON.stringify(u)}`);
        if (u.completion_tokens > job.mt) s.problems.push(`completion_tokens ${u.completion_tokens} > ${job.mt}`);
        if (s.finish === 'length' && u.completion_tokens !== job.mt) s.problems.push(`length but ${u.completion_tokens} tokens`);
        if (s.chunks > u.completion_tokens) s.problems.push(`${s.chunks} content chunks > ${u.completion_tokens} tokens`);
        if (u.prompt_tokens !== refs.get(key(job.p, job.mt)).usage.prompt_tokens) s.problems.push(`prompt_tokens ${u.prompt_tokens}`);
        receivedTokens += u.completion_tokens;
      }
      if (!job.sampled) {
        const ref = refs.get(key(job.p, job.mt));
        if (s.text !== ref.text) s.problems.push(`text ${JSON.stringify(s.text)} != alone ${JSON.stringify(ref.text)}`);
        if (s.finish !== ref.finish) s.problems.push(`finish ${s.finish} != alone ${ref.finish}`);
        if (JSON.stringify(s.usage) !== JSON.stringify(ref.usage)) {
          s.problems.push(`usage ${JSON.stringify(s.usage)} != alone ${JSON.stringify(ref.usage)}`);
        }
      }
      if (s.problems.length) stats.failures.push(`${what}: ${s.problems.join('; ')}`);
      stats.completed += 1;
      stats.tokens += s.usage?.completion_tokens ?? 0;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  assert.ok(srv.alive(), `server died in ${label}: ${JSON.stringify(srv.exited)}\n${srv.log()}`);
  const health = await srv.get('/health');
  assert.equal(health.status, 200, `/health after ${label}`);
  const { ok, m } = await srv.waitMetrics((x) => x.get('tandem_kv_pages_used') === 0 &&
    x.get('tandem_requests_running') === 0 && x.get('tandem_requests_waiting') === 0, 5000);
  assert.ok(ok, `${label}: not drained after 5 s: pages used ${m.get('tandem_kv_pages_used')}, ` +
    `running ${m.get('tandem_requests_running')}, waiting ${m.get('tandem_requests_waiting')}`);
  const generated = m.sum('tandem_generation_tokens_total') - before.sum('tandem_generation_tokens_total');
  assert.ok(generated >= receivedTokens, `${label}: generation counter grew by ${generated} < ${receivedTokens} tokens received`);
  const d = (name) => m.sum(name) - before.sum(name);
  console.log(`# ${label}: ${n} requests in ${((Date.now() - t0) / 1000).toFixed(1)} s, RSS ${(srv.rssKiB() / 1024).toFixed(1)} MiB, ` +
    `generated ${generated} tokens (received ${receivedTokens}), preemptions ${d('tandem_preemptions_total')}, ` +
    `prefix-hit tokens ${d('tandem_prefix_cache_hit_tokens_total')}`);
  return m;
}

const newStats = () => ({ completed: 0, aborted: 0, abortedEarly: 0, tokens: 0, failures: [], maxFirstEventMs: 0 });
function report(stats, t0) {
  console.log(`# ${stats.completed} completed, ${stats.aborted} aborted (${stats.abortedEarly} before the first event), ` +
    `${stats.tokens} tokens, ${((Date.now() - t0) / 1000).toFixed(1)} s, max time to first event ${stats.maxFirstEventMs} ms`);
  assert.deepEqual(stats.failures.slice(0, 30), [], `${stats.failures.length} failed requests`);
}

describe('tandem serve under load', { skip: H.SKIP, timeout: 400_000 }, () => {
  let srv;
  before(async () => { srv = await H.startServer(FLAGS); });
  after(async () => { await srv?.stop(); });

  test(`${TOTAL} streaming requests, ${CONCURRENCY} at a time, a fifth aborted; the server drains and does not grow`, async () => {
    const refs = await references(srv);
    const rand = H.rng(20240611);
    const stats = newStats();
    const rss = [];
    const t0 = Date.now();
    const perRound = Math.floor(TOTAL / ROUNDS);
    for (let round = 0; round < ROUNDS; ++round) {
      await runRound(srv, refs, rand, perRound, CONCURRENCY, `round ${round + 1}`, stats);
      rss.push(srv.rssKiB());
    }
    report(stats, t0);
    assert.equal(stats.completed + stats.aborted, ROUNDS * perRound);
    assert.ok(stats.aborted >= TOTAL * 0.1, `only ${stats.aborted} aborted`);
    const growth = (rss[ROUNDS - 1] - rss[0]) / rss[0];
    assert.ok(growth <= RSS_GROWTH, `RSS grew ${(growth * 100).toFixed(1)}% between the rounds (${rss.join(' -> ')} KiB)`);
  });
});

describe('tandem serve under load with a small KV cache (preemption)', { skip: H.SKIP, timeout: 200_000 }, () => {
  let srv;
  before(async () => { srv = await H.startServer(PRESSURE_FLAGS); });
  after(async () => { await srv?.stop(); });

  test(`${PRESSURE_REQUESTS} requests on --cache_lens 384: preempted requests give the same greedy text`, async () => {
    const refs = await references(srv);
    const stats = newStats();
    const t0 = Date.now();
    const m = await runRound(srv, refs, H.rng(777), PRESSURE_REQUESTS, CONCURRENCY, 'small cache', stats);
    report(stats, t0);
    assert.ok(m.sum('tandem_preemptions_total') > 0, 'no preemption happened: the scenario does not test what it should');
  });
});
