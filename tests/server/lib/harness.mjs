// Shared helpers of the `tandem serve` end-to-end tests: where things are, starting and stopping a server
// on a free loopback port, SSE and Prometheus parsing, small HTTP helpers, a seeded PRNG.
//
// Environment:
//   TANDEM_BIN          the tandem binary (CTest passes $<TARGET_FILE:tandem>); default: <repo>/build-srvtest/tandem,
//                       then <repo>/build/tandem
//   TANDEM_FIXTURE_DIR  the model folder (model.gguf + config.json); default: <repo>/../shared/fixtures/models/tiny-dsv3-bf16
//   TANDEM_SERVER_LOG   when set, server output is echoed to stderr as it comes
//   TANDEM_THREADS      --threads for the server (default 2)
import { spawn, execFile } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../../..');
export const SHARED = path.resolve(REPO, '../shared');
export const FIXTURE_DIR = process.env.TANDEM_FIXTURE_DIR ||
  path.join(SHARED, 'fixtures/models/tiny-dsv3-bf16');
export const GGUF = path.join(FIXTURE_DIR, 'model.gguf');
export const EOS_ID = 1;
export const MODEL_NAME = 'tandem-tiny-test';
export const THREADS = process.env.TANDEM_THREADS || '2';

function findBinary() {
  if (process.env.TANDEM_BIN) return process.env.TANDEM_BIN;
  for (const d of ['build-srvtest', 'build']) {
    const p = path.join(REPO, d, 'tandem');
    if (existsSync(p)) return p;
  }
  return null;
}
export const TANDEM_BIN = findBinary();

// Why the suite cannot run here (a reason string), or false. The shell runner exits 77 on the same checks.
export const SKIP = (() => {
  if (!existsSync(GGUF)) return `fixture model not found at ${FIXTURE_DIR} (../shared beside the checkout)`;
  if (!TANDEM_BIN || !existsSync(TANDEM_BIN)) return 'tandem binary not found (set TANDEM_BIN)';
  return false;
})();

export function referenceCases() {
  return JSON.parse(readFileSync(path.join(FIXTURE_DIR, 'ref.json'), 'utf8')).cases;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Another fixture model's folder (beside FIXTURE_DIR), e.g. fixtureModel('tiny-qwen3moe-bf16').
export function fixtureModel(name) { return path.join(path.dirname(FIXTURE_DIR), name); }

// Starts `tandem serve` on the fixture with the given extra flags; resolves once GET /health answers 200.
// `env` adds environment variables for the server process (e.g. TANDEM_INJECT_FAULT); `fixtureDir` serves another
// fixture model (a folder with model.gguf and config.json).
export async function startServer(extraArgs = [], { startupTimeoutMs = 120_000, apiKey, env, fixtureDir = FIXTURE_DIR } = {}) {
  let lastError;
  for (let attempt = 0; attempt < 3; ++attempt) {
    const port = await freePort();
    const args = ['serve', '--gguf_path', path.join(fixtureDir, 'model.gguf'), '--model_path', fixtureDir, '--port', String(port),
      '--host', '127.0.0.1', '--served-model-name', MODEL_NAME, '--threads', THREADS, ...extraArgs];
    const server = new Server(args, port, apiKey, env);
    try {
      await server.waitHealthy(startupTimeoutMs);
      return server;
    } catch (e) {
      lastError = e;
      await server.stop();
      if (!/address|in use|bind/i.test(server.log())) break;  // retry only a lost port race
    }
  }
  throw lastError;
}

// Servers still running when this process ends are killed (also on SIGINT/SIGTERM, e.g. a CTest timeout).
const running = new Set();
process.on('exit', () => { for (const s of running) s.proc.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const s of running) s.proc.kill('SIGKILL');
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  });
}

export class Server {
  constructor(args, port, apiKey, env) {
    this.args = args;
    this.port = port;
    this.url = `${args.includes('--ssl_certfile') ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.apiKey = apiKey;
    this.output = '';
    this.exited = null;
    this.proc = spawn(TANDEM_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(env || {}) } });
    running.add(this);
    const collect = (chunk) => {
      const s = chunk.toString();
      if (process.env.TANDEM_SERVER_LOG) process.stderr.write(s);
      this.output += s;
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    this.proc.stdout.on('data', collect);
    this.proc.stderr.on('data', collect);
    this.exitPromise = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exited = { code, signal };
        this.exitedAt = Date.now();
        running.delete(this);
        resolve(this.exited);
      });
    });
  }

  get pid() { return this.proc.pid; }
  alive() { return this.exited === null; }
  log(n = 4000) { return this.output.slice(-n); }
  describe() { return `tandem ${this.args.join(' ')}`; }

  async waitHealthy(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.alive()) {
        throw new Error(`server exited (${JSON.stringify(this.exited)}) before /health answered.\n` +
          `${this.describe()}\n--- server output ---\n${this.log()}`);
      }
      try {
        const r = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        if (r.status === 200) return;
      } catch { /* not up yet */ }
      await sleep(100);
    }
    throw new Error(`server did not answer /health within ${timeoutMs} ms.\n${this.describe()}\n${this.log()}`);
  }

  // SIGTERM, then SIGKILL after 10 s. Resolves to the exit status.
  async stop() {
    if (this.alive()) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => { if (this.alive()) this.proc.kill('SIGKILL'); }, 10_000);
      await this.exitPromise;
      clearTimeout(t);
    }
    return this.exited;
  }

  // Resident set size of the server process in KiB (VmRSS of /proc/PID/status).
  rssKiB() {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : NaN;
  }

  headers(extra = {}) {
    const h = { 'content-type': 'application/json', ...extra };
    if (this.apiKey) h.authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  // POST JSON (an object, or a raw string body); resolves to { status, headers, text, json }.
  async post(route, body, { headers = {}, signal } = {}) {
    const r = await fetch(this.url + route, {
      method: 'POST', headers: this.headers(headers), signal,
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return readResponse(r);
  }

  async get(route, { headers = {} } = {}) {
    const r = await fetch(this.url + route, { headers: this.headers(headers) });
    return readResponse(r);
  }

  async metrics() {
    const r = await this.get('/metrics');
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.text}`);
    return parsePrometheus(r.text);
  }

  // Polls /metrics until pred(metrics) holds; returns the last metrics and whether it held.
  async waitMetrics(pred, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    let m;
    for (;;) {
      m = await this.metrics();
      if (pred(m)) return { ok: true, m };
      if (Date.now() > deadline) return { ok: false, m };
      await sleep(50);
    }
  }

  async tokenize(text) {
    const r = await this.post('/tokenize', { content: text });
    if (r.status !== 200) throw new Error(`/tokenize answered ${r.status}: ${r.text}`);
    return r.json.tokens;
  }

  async detokenize(tokens) {
    const r = await this.post('/detokenize', { tokens });
    if (r.status !== 200) throw new Error(`/detokenize answered ${r.status}: ${r.text}`);
    return r.json.content;
  }

  // Streams a request; resolves to { status, headers, events: [parsed JSON], raw, done, ... }.
  async stream(route, body, opts = {}) {
    const r = await fetch(this.url + route, {
      method: 'POST', headers: this.headers(opts.headers), body: JSON.stringify({ ...body, stream: true }),
      signal: opts.signal,
    });
    if (r.status !== 200 || !r.body) return readResponse(r);
    return readSse(r, opts);
  }
}

export async function readResponse(r) {
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

// Reads a text/event-stream body. Every event must be `data: ...` terminated by a blank line.
// opts.onEvent(json, index) is called per parsed event (it may abort the request).
export async function readSse(r, opts = {}) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let buf = '';
  let raw = '';
  const events = [];
  const framingErrors = [];
  let done = false;
  let afterDone = false;
  const reader = r.body.getReader();
  // Node's fetch (undici 6) can leave a read pending forever when the signal aborts after the body has arrived
  // but before its stream closed (nodejs/undici#4089; seen as a rare hang of the load test's aborted streams):
  // each read races the signal, and an aborted read cancels the stream itself.
  const signal = opts.signal;
  let onAbort = null;
  const aborted = signal ? new Promise((_, reject) => {
    onAbort = () => reject(Object.assign(new Error('the request was aborted'), { name: 'AbortError' }));
    if (signal.aborted) onAbort(); else signal.addEventListener('abort', onAbort, { once: true });
  }) : null;
  aborted?.catch(() => {});
  try {
    for (;;) {
      const read = reader.read();
      read.catch(() => {});  // a read that loses the race may reject later: nobody waits for it
      const { value, done: end } = await (aborted ? Promise.race([read, aborted]) : read);
      if (end) break;
      const s = decoder.decode(value, { stream: true });
      raw += s;
      buf += s;
      let idx;
      while ((idx = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, idx);
        buf = buf.slice(idx + 2);
        if (block.trim() === '') continue;
        const lines = block.split('\n');
        const data = [];
        for (const line of lines) {
          if (line.startsWith('data: ')) data.push(line.slice(6));
          else if (line.startsWith(':')) continue;  // SSE comment
          else framingErrors.push(`unexpected SSE line: ${JSON.stringify(line)}`);
        }
        if (data.length === 0) continue;  // a comment-only block (keep-alive)
        const payload = data.join('\n');
        if (done) afterDone = true;
        if (payload === '[DONE]') { done = true; continue; }
        let json;
        try { json = JSON.parse(payload); } catch {
          framingErrors.push(`SSE data is not JSON: ${JSON.stringify(payload.slice(0, 200))}`);
          continue;
        }
        events.push(json);
        if (opts.onEvent) opts.onEvent(json, events.length - 1);
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError' && !signal?.aborted) throw e;
    reader.cancel().catch(() => {});
    return { status: r.status, headers: r.headers, events, raw, done, aborted: true, framingErrors };
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
  if (buf.trim() !== '') framingErrors.push(`trailing bytes after the last event: ${JSON.stringify(buf.slice(0, 200))}`);
  if (afterDone) framingErrors.push('events after data: [DONE]');
  return { status: r.status, headers: r.headers, events, raw, done, aborted: false, framingErrors };
}

// Prometheus text exposition format -> { types: {name: type}, samples: [{name, labels, value}] } with helpers.
export function parsePrometheus(text) {
  const types = {};
  const help = {};
  const samples = [];
  const errors = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      types[m[1]] = m[2];
    } else if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) {
      help[m[1]] = m[2];
    } else if (line.startsWith('#')) {
      continue;
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)( -?\d+)?$/.exec(line))) {
      const labels = {};
      if (m[3]) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
        let l;
        while ((l = re.exec(m[3]))) labels[l[1]] = l[2];
      }
      const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
      if (Number.isNaN(v) && m[4] !== 'NaN') errors.push(`bad value: ${line}`);
      samples.push({ name: m[1], labels, value: v });
    } else {
      errors.push(`unparsable line: ${JSON.stringify(line)}`);
    }
  }
  const get = (name, labels = {}) => {
    const s = samples.find((x) => x.name === name &&
      Object.entries(labels).every(([k, v]) => x.labels[k] === v));
    return s ? s.value : undefined;
  };
  // Sum over all label sets (e.g. a counter split by model name).
  const sum = (name) => samples.filter((x) => x.name === name).reduce((a, x) => a + x.value, 0);
  const has = (name) => samples.some((x) => x.name === name);
  return { types, help, samples, errors, get, sum, has };
}

// `tandem eval` greedy continuations of prompt id lists: resolves to [[ids...], ...].
export async function evalGreedy(prompts, n, extraArgs = []) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tandem-srvtest-'));
  try {
    const cases = path.join(dir, 'cases.json');
    writeFileSync(cases, JSON.stringify({ cases: prompts.map((ids) => ({ ids })) }));
    const args = ['eval', '--gguf', GGUF, '--model-path', FIXTURE_DIR, '--cases', cases, '--greedy', String(n),
      '--json-out', path.join(dir, 'out.json'), '--logits-out', path.join(dir, 'logits.f32'),
      '--threads', THREADS, ...extraArgs];
    await new Promise((resolve, reject) => {
      execFile(TANDEM_BIN, args, { maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`tandem ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        else resolve();
      });
    });
    return JSON.parse(readFileSync(path.join(dir, 'out.json'), 'utf8')).cases.map((c) => c.greedy);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Deterministic PRNG (mulberry32) so failing cases can be reproduced from the seed.
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),  // inclusive
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    bytes: (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; ++i) b[i] = Math.floor(next() * 256); return b; },
  };
}

// Checks the OpenAI error envelope; returns a list of problems (empty when fine).
export function errorEnvelopeProblems(json) {
  const p = [];
  if (!json || typeof json !== 'object') return ['body is not a JSON object'];
  const e = json.error;
  if (!e || typeof e !== 'object') return ['no "error" object'];
  if (typeof e.message !== 'string' || e.message.length === 0) p.push('error.message is not a non-empty string');
  if (typeof e.type !== 'string' || e.type.length === 0) p.push('error.type is not a non-empty string');
  if (!('param' in e)) p.push('error.param missing (null allowed)');
  else if (e.param !== null && typeof e.param !== 'string') p.push('error.param is neither null nor a string');
  if (!('code' in e)) p.push('error.code missing (null allowed)');
  else if (e.code !== null && typeof e.code !== 'string' && typeof e.code !== 'number') p.push('error.code has a bad type');
  return p;
}

export { sleep };
