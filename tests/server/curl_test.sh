#!/usr/bin/env bash
# HTTP-level checks of `tandem serve` with curl: SSE framing, content types, keep-alive, chunked request
# bodies, Expect: 100-continue, auth. Exit 77 (CTest: skipped) without the fixture or curl.
# usage: curl_test.sh [TANDEM_BINARY]     (default: $TANDEM_BIN)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="${1:-${TANDEM_BIN:-}}"
fixture="${TANDEM_FIXTURE_DIR:-$here/../../../shared/fixtures/models/tiny-dsv3-bf16}"
if [ ! -f "$fixture/model.gguf" ]; then echo "SKIP: $fixture not found (../shared beside the checkout)"; exit 77; fi
if ! command -v curl >/dev/null || ! command -v python3 >/dev/null; then echo "SKIP: needs curl and python3"; exit 77; fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then echo "FAIL: tandem binary not given (arg 1 or TANDEM_BIN)"; exit 1; fi

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
pass() { echo "ok   - $1"; }
fail() { echo "FAIL - $1"; failures=$((failures + 1)); }
check() { local what="$1"; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=sk-curl-test
"$bin" serve --gguf_path "$fixture/model.gguf" --model_path "$fixture" --port "$port" --host 127.0.0.1 \
  --served-model-name curl-tiny --threads 2 --max_new_tokens 256 --cache_lens 2048 --api-key "$key" \
  >"$tmp/server.log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 600); do
  curl -sf -o /dev/null "$url/health" && break
  kill -0 "$pid" 2>/dev/null || { echo "FAIL: server exited"; cat "$tmp/server.log"; exit 1; }
  sleep 0.1
done
curl -sf -o /dev/null "$url/health" || { echo "FAIL: /health never answered"; tail -50 "$tmp/server.log"; exit 1; }

auth=(-H "Authorization: Bearer $key")
json=(-H 'Content-Type: application/json')
chat='{"model":"curl-tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":8,"temperature":0}'
chat_stream='{"model":"curl-tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'

# 1. SSE framing: every event is `data: <json>` + blank line, the stream ends with `data: [DONE]\n\n`.
curl -sN "${auth[@]}" "${json[@]}" -D "$tmp/sse.h" -d "$chat_stream" "$url/v1/chat/completions" >"$tmp/sse.body"
check "SSE: HTTP 200" grep -qE '^HTTP/1\.[01] 200' "$tmp/sse.h"
check "SSE: Content-Type text/event-stream" grep -qi '^content-type: *text/event-stream' "$tmp/sse.h"
check "SSE: ends with data: [DONE] and a blank line" python3 - "$tmp/sse.body" <<'EOF'
import json, sys
raw = open(sys.argv[1], 'rb').read().decode('utf-8')
raw = raw.replace('\r\n', '\n')
assert raw.endswith('data: [DONE]\n\n'), repr(raw[-80:])
events = raw.split('\n\n')
assert events[-1] == '', 'bytes after the last blank line'
events = [e for e in events[:-1] if not e.startswith(':')]
assert events[-1] == 'data: [DONE]'
text, usage = '', None
for e in events[:-1]:
    assert e.startswith('data: ') and '\n' not in e, repr(e)
    j = json.loads(e[6:])
    assert j['object'] == 'chat.completion.chunk', j
    if j.get('usage'):
        usage = j['usage']; assert j['choices'] == []
    else:
        text += j['choices'][0]['delta'].get('content') or ''
assert usage and usage['completion_tokens'] <= 8 and usage['prompt_tokens'] == 4, usage
print('  streamed text:', repr(text), usage)
EOF

# 2. Non-streaming: JSON content type, same text as the stream.
curl -s "${auth[@]}" "${json[@]}" -D "$tmp/plain.h" -d "$chat" "$url/v1/chat/completions" >"$tmp/plain.body"
check "non-streaming: Content-Type application/json" grep -qi '^content-type: *application/json' "$tmp/plain.h"
check "non-streaming content equals the streamed content" python3 - "$tmp/plain.body" "$tmp/sse.body" <<'EOF'
import json, sys
full = json.load(open(sys.argv[1]))
text = ''
for e in open(sys.argv[2]).read().split('\n\n'):
    if e.startswith('data: {'):
        j = json.loads(e[6:])
        if j['choices']: text += j['choices'][0]['delta'].get('content') or ''
assert full['choices'][0]['message']['content'] == text, (full, text)
EOF

# 3. Completions stream framing too.
curl -sN "${auth[@]}" "${json[@]}" -d '{"prompt":[671,4787,13769],"max_tokens":5,"stream":true}' "$url/v1/completions" >"$tmp/c.body"
check "completions SSE ends with data: [DONE]" python3 -c "
import sys; raw=open(sys.argv[1]).read(); assert raw.endswith('data: [DONE]\n\n'), repr(raw[-80:])" "$tmp/c.body"

# 4. Keep-alive: two requests over one connection.
curl -sv "${auth[@]}" "$url/v1/models" "$url/health" -o /dev/null -o /dev/null 2>"$tmp/ka.err"
check "keep-alive: the second request reuses the connection" grep -qiE 're-?using existing connection' "$tmp/ka.err"

# 5. A chunked request body (Transfer-Encoding: chunked).
code=$(printf '%s' "$chat" | curl -s -o "$tmp/chunked.body" -w '%{http_code}' "${auth[@]}" "${json[@]}" \
  -H 'Transfer-Encoding: chunked' --data-binary @- "$url/v1/chat/completions")
check "chunked request body: 200 (got $code)" test "$code" = 200

# 6. Expect: 100-continue (curl sends it for bodies over 1 KiB; the server must not make it wait 1 s).
big=$(python3 -c 'import json; print(json.dumps({"messages":[{"role":"user","content":"word "*400}],"max_tokens":2}))')
start=$(date +%s.%N)
code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "${json[@]}" -H 'Expect: 100-continue' --expect100-timeout 5 \
  -d "$big" "$url/v1/chat/completions")
elapsed=$(python3 -c "print(round($(date +%s.%N) - $start, 2))")
check "Expect: 100-continue body: 200 (got $code)" test "$code" = 200
check "Expect: 100-continue answered promptly (${elapsed}s < 4s)" python3 -c "assert $elapsed < 4"

# 7. Auth and errors with curl.
code=$(curl -s -o "$tmp/401.body" -w '%{http_code}' "${json[@]}" -d "$chat" "$url/v1/chat/completions")
check "no key: 401 (got $code)" test "$code" = 401
check "401 body is an OpenAI error" python3 -c "
import json,sys; e=json.load(open(sys.argv[1]))['error']; assert e['message'] and e['type'] and 'param' in e and 'code' in e" "$tmp/401.body"
code=$(curl -s -o "$tmp/400.body" -w '%{http_code}' "${auth[@]}" "${json[@]}" -d '{"messages": [' "$url/v1/chat/completions")
check "truncated JSON: 400 (got $code)" test "$code" = 400
code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "${json[@]}" -d '{"messages":[{"role":"user","content":"hi"}],"n":2}' "$url/v1/chat/completions")
check "n=2: 400 (got $code)" test "$code" = 400

# 8. /metrics content type.
curl -s -D "$tmp/m.h" -o "$tmp/m.body" "${auth[@]}" "$url/metrics"
check "/metrics: text/plain" grep -qi '^content-type: *text/plain' "$tmp/m.h"
check "/metrics: tandem_kv_pages_used present" grep -q '^tandem_kv_pages_used' "$tmp/m.body"

# 9. A client that hangs up mid-stream: the server keeps serving and frees the request.
curl -sN --max-time 0.5 "${auth[@]}" "${json[@]}" \
  -d '{"prompt":[671,4787,13769],"max_tokens":250,"stream":true}' "$url/v1/completions" >/dev/null 2>&1
freed=no
for _ in $(seq 50); do
  if curl -s "${auth[@]}" "$url/metrics" | grep -qE '^tandem_requests_running(\{[^}]*\})? 0$'; then freed=yes; break; fi
  sleep 0.1
done
check "hang-up: tandem_requests_running back to 0" test "$freed" = yes
check "server alive at the end" kill -0 "$pid"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed; server log tail:"; tail -30 "$tmp/server.log"; exit 1
fi
echo "PASS: all curl checks"
