// Bounded loopback load test of `tandem serve`: 64 concurrent streaming clients, two rounds of
// LOAD_REQUESTS/2 requests (500 in all by default), a fifth aborted mid-stream. Checks: no crash, every
// completed greedy request gives exactly the text and usage it gives alone, the cache and the queues drain
// (tandem_kv_pages_used 0, tandem_requests_running 0), and RSS does not grow between the rounds.
// Env: LOAD_REQUESTS (500), LOAD_CONCURRENCY (64), LOAD_RSS_GROWTH (0.10).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as H from './lib/harness.mjs';

const TOTAL = Number(process.env.LOAD_REQUESTS || 500);
const CONCURRENCY = Number(process.env.LOAD_CONCURRENCY || 64);
const RSS_GROWTH = Number(process.env.LOAD_RSS_GROWTH || 0.10);
const ROUNDS = 2;
const FLAGS = ['--max_batch_size', '8', '--cache_lens', '2048', '--page_size', '16', '--chunk_size', '256',
  '--max_new_tokens', '64', '--max-queue', '1024'];
const MAX_TOKENS = [8, 12, 16];

// Prompts: chat and completions, some sharing long prefixes (prefix cache), different lengths.
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

describe('tandem serve under load', { skip: H.SKIP }, () => {
  let srv;
  let refs;  // key -> { text, finish, usage } computed one request at a time
  const P = H.SKIP ? [] : prompts();
  const key = (p, mt) => `${p}/${mt}`;

  before(async () => {
    srv = await H.startServer(FLAGS);
    refs = new Map();
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
  });
  after(async () => { await srv?.stop(); });

  test(`${TOTAL} streaming requests, ${CONCURRENCY} at a time, a fifth aborted; the server drains and does not grow`, async () => {
    const rand = H.rng(20240611);
    const rss = [];
    const stats = { completed: 0, aborted: 0, abortedBeforeFirstToken: 0, tokens: 0, failures: [] };
    let ttftMax = 0;
    const t0 = Date.now();
    for (let round = 0; round < ROUNDS; ++round) {
      const n = Math.floor(TOTAL / ROUNDS);
      // Plan the round first so it is reproducible.
      const plan = Array.from({ length: n }, (_, i) => ({
        i, p: rand.int(0, P.length - 1), mt: rand.pick(MAX_TOKENS),
        abort: rand.next() < 0.2, abortAfterEvents: rand.int(0, 3), abortDelayMs: rand.int(0, 40),
        sampled: rand.next() < 0.15, seed: rand.int(1, 1e6),
      }));
      let next = 0;
      const roundStart = Date.now();
      const genBefore = (await srv.metrics()).sum('tandem_generation_tokens_total');
      let completedTokens = 0;
      const worker = async () => {
        while (next < plan.length) {
          const job = plan[next++];
          const { route, body } = P[job.p];
          const ac = new AbortController();
          const req = { ...body, max_tokens: job.mt, stream_options: { include_usage: true },
            ...(job.sampled ? { temperature: 0.8, top_p: 0.95, seed: job.seed } : { temperature: 0 }) };
          let timer;
          if (job.abort && job.abortAfterEvents === 0) timer = setTimeout(() => ac.abort(), job.abortDelayMs);
          const sent = Date.now();
          let first = 0;
          let res;
          try {
            res = await srv.stream(route, req, { signal: ac.signal, onEvent: (e, idx) => {
              if (!first) first = Date.now();
              if (job.abort && job.abortAfterEvents > 0 && idx + 1 >= job.abortAfterEvents) ac.abort();
            } });
          } catch (e) {
            if (ac.signal.aborted) { stats.aborted += 1; stats.abortedBeforeFirstToken += 1; continue; }
            stats.failures.push(`round ${round} job ${job.i}: ${e.message}`);
            continue;
          } finally {
            clearTimeout(timer);
          }
          if (first) ttftMax = Math.max(ttftMax, first - sent);
          if (res.status !== 200) {
            stats.failures.push(`round ${round} job ${job.i}: HTTP ${res.status} ${res.text?.slice(0, 200)}`);
            continue;
          }
          if (res.aborted) { stats.aborted += 1; continue; }
          const s = summarize(res, route);
          const what = `round ${round} job ${job.i} (prompt ${job.p}, max_tokens ${job.mt}${job.sampled ? ', sampled' : ''})`;
          if (!res.done) s.problems.push('no data: [DONE]');
          if (!s.usage) s.problems.push('no usage chunk');
          if (!s.finish) s.problems.push('no finish_reason');
          if (s.usage) {
            const u = s.usage;
            if (u.total_tokens !== u.prompt_tokens + u.completion_tokens) s.problems.push(`usage sum ${JSON.stringify(u)}`);
            if (u.completion_tokens > job.mt) s.problems.push(`completion_tokens ${u.completion_tokens} > ${job.mt}`);
            if (s.finish === 'length' && u.completion_tokens !== job.mt) s.problems.push(`length but ${u.completion_tokens} tokens`);
            if (s.chunks > u.completion_tokens) s.problems.push(`${s.chunks} content chunks > ${u.completion_tokens} tokens`);
            completedTokens += u.completion_tokens;
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
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      assert.ok(srv.alive(), `server died in round ${round}: ${JSON.stringify(srv.exited)}\n${srv.log()}`);
      const health = await srv.get('/health');
      assert.equal(health.status, 200, `/health after round ${round}`);
      const { ok, m } = await srv.waitMetrics((x) => x.get('tandem_kv_pages_used') === 0 &&
        x.get('tandem_requests_running') === 0 && x.get('tandem_requests_waiting') === 0, 5000);
      assert.ok(ok, `round ${round}: not drained after 5 s: pages used ${m.get('tandem_kv_pages_used')}, ` +
        `running ${m.get('tandem_requests_running')}, waiting ${m.get('tandem_requests_waiting')}`);
      const generated = m.sum('tandem_generation_tokens_total') - genBefore;
      assert.ok(generated >= completedTokens, `generation counter grew by ${generated} < ${completedTokens} tokens received`);
      rss.push(srv.rssKiB());
      console.log(`# round ${round}: ${n} requests in ${((Date.now() - roundStart) / 1000).toFixed(1)} s, ` +
        `RSS ${(rss[round] / 1024).toFixed(1)} MiB, generated ${generated} tokens (received ${completedTokens}), ` +
        `preemptions ${m.sum('tandem_preemptions_total')}, prefix hits ${m.sum('tandem_prefix_cache_hit_tokens_total')}`);
    }
    console.log(`# ${stats.completed} completed, ${stats.aborted} aborted (${stats.abortedBeforeFirstToken} before the first event), ` +
      `${stats.tokens} tokens, ${((Date.now() - t0) / 1000).toFixed(1)} s, max time to first event ${ttftMax} ms`);
    assert.deepEqual(stats.failures.slice(0, 30), [], `${stats.failures.length} failed requests`);
    assert.equal(stats.completed + stats.aborted, ROUNDS * Math.floor(TOTAL / ROUNDS));
    assert.ok(stats.aborted >= TOTAL * 0.1, `only ${stats.aborted} aborted`);
    const growth = (rss[ROUNDS - 1] - rss[0]) / rss[0];
    assert.ok(growth <= RSS_GROWTH, `RSS grew ${(growth * 100).toFixed(1)}% between the rounds (${rss.join(' -> ')} KiB)`);
  });
});
