// HTTPS: `tandem serve --ssl_certfile C --ssl_keyfile K` (KTransformers' flags) with a certificate made here by
// the openssl command: the served certificate verifies against it, the official client works over TLS
// (streaming and not, the same greedy text), plain HTTP or a silent socket on the TLS port cannot hold the
// server, and bad TLS settings stop the server at start with a message.
// Run: TANDEM_BIN=build/tandem node --test tests/server/tls.test.mjs
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import OpenAI from 'openai';
import * as H from './lib/harness.mjs';

// The openai client goes through Node's fetch, which takes no CA option: it skips verification here, and the
// first test verifies the served certificate against ours with tls.connect.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');

function haveOpenssl() {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const SKIP = H.SKIP || (haveOpenssl() ? false : 'the openssl command is missing');

function makeCertificate(dir, name) {
  const cert = path.join(dir, `${name}.crt`), key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { cert, key };
}

// Runs `tandem serve` expecting it to exit at start; resolves with its exit code and output.
function serveExpectingFailure(extraArgs) {
  return new Promise((resolve) => {
    const proc = spawn(H.TANDEM_BIN, ['serve', '--gguf_path', H.GGUF, '--model_path', H.FIXTURE_DIR, '--port', '0',
      '--host', '127.0.0.1', '--threads', H.THREADS, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

describe('HTTPS (--ssl_certfile / --ssl_keyfile)', { skip: SKIP }, () => {
  let dir, files, server, client;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tandem-tls-'));
    files = makeCertificate(dir, 'server');
    server = await H.startServer(['--ssl_certfile', files.cert, '--ssl_keyfile', files.key, '--max_new_tokens', '64']);
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the server speaks TLS with the given certificate', async () => {
    assert.ok(server.url.startsWith('https://'));
    const ca = readFileSync(files.cert);
    const peer = await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost' }, () => {
        resolve({ authorized: s.authorized, error: s.authorizationError, cert: s.getPeerX509Certificate() });
        s.end();
      });
      s.on('error', reject);
    });
    assert.equal(peer.authorized, true, `certificate not accepted: ${peer.error}`);
    assert.equal(peer.cert.fingerprint256, new X509Certificate(ca).fingerprint256);
  });

  test('the openai client works over HTTPS, streaming and not, with the same greedy text', async () => {
    const messages = [{ role: 'user', content: 'hello over tls' }];
    const whole = await client.chat.completions.create({ model: H.MODEL_NAME, messages, max_tokens: 16, temperature: 0 });
    assert.equal(whole.object, 'chat.completion');
    const text = whole.choices[0].message.content;
    assert.ok(whole.usage.completion_tokens > 0);
    let streamed = '';
    let finish = null;
    const stream = await client.chat.completions.create({ model: H.MODEL_NAME, messages, max_tokens: 16, temperature: 0,
      stream: true });
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(streamed, text);
    assert.equal(finish, whole.choices[0].finish_reason);
  });

  test('plain HTTP and silent sockets on the TLS port do not hold the server', async () => {
    // Plain HTTP: the handshake fails, the connection is closed, nothing is served.
    await assert.rejects(fetch(`http://127.0.0.1:${server.port}/health`, { signal: AbortSignal.timeout(5000) }));
    // Sockets that never start a handshake.
    const idle = await Promise.all(Array.from({ length: 24 }, () => new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: server.port }, () => resolve(s));
      s.on('error', reject);
    })));
    try {
      const started = Date.now();
      const r = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(5000) });
      assert.equal(r.status, 200);
      assert.ok(Date.now() - started < 2000, `/health took ${Date.now() - started} ms beside idle sockets`);
    } finally {
      for (const s of idle) s.destroy();
    }
  });

  test('bad TLS settings stop the server at start with a message', async () => {
    const other = makeCertificate(dir, 'other');
    const onlyCert = await serveExpectingFailure(['--ssl_certfile', files.cert]);
    assert.notEqual(onlyCert.code, 0);
    assert.match(onlyCert.out, /needs both --ssl_certfile and --ssl_keyfile/);
    const missing = await serveExpectingFailure(['--ssl_certfile', path.join(dir, 'absent.crt'), '--ssl_keyfile', files.key]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.out, /cannot use certificate file .*absent\.crt/);
    const mismatched = await serveExpectingFailure(['--ssl_certfile', files.cert, '--ssl_keyfile', other.key]);
    assert.notEqual(mismatched.code, 0);
    assert.match(mismatched.out, /(does not match|cannot use key file)/);
    writeFileSync(path.join(dir, 'garbage.key'), 'not a key\n');
    const garbage = await serveExpectingFailure(['--ssl_certfile', files.cert, '--ssl_keyfile', path.join(dir, 'garbage.key')]);
    assert.notEqual(garbage.code, 0);
    assert.match(garbage.out, /cannot use key file/);
  });
});
