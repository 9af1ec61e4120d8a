#!/usr/bin/env bash
# schemathesis against the live server: generates requests from /api/v1/openapi.json and checks
# that no answer is a 5xx and that every answer matches the document (status, schema, headers).
# Starts target/debug/telesoin on a free port with a fresh data directory holding a kiné, a
# platform and an API key made with the CLI. Installs schemathesis (PyPI) when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! command -v schemathesis >/dev/null && ! python3 -m schemathesis.cli --help >/dev/null 2>&1; then
  echo "tests/api: installing schemathesis"
  python3 -m pip install -q schemathesis
fi
st() { if command -v schemathesis >/dev/null; then schemathesis "$@"; else python3 -m schemathesis.cli "$@"; fi; }

# TEST_TELESOIN_BIN: an already built binary (default: build target/debug/telesoin).
bin=${TEST_TELESOIN_BIN:-}
if [ -z "$bin" ]; then
  cargo build -q -p telesoin-server --bin telesoin
  bin=target/debug/telesoin
fi
data=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$data"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TELESOIN_LOG=warn TELESOIN_TLS=off TELESOIN_API_RATE_PER_SECOND=1000 TELESOIN_API_BURST=1000
TELESOIN_NEW_PASSWORD="schemathesis password" "$bin" add-kine --data-dir "$data" \
  --email api@telesoin.test --name "Claire Martin" --rpps 10001234567 >/dev/null
platform=$("$bin" platform add --data-dir "$data" --name "Schemathesis" | sed -E 's/.* id ([0-9a-f-]+) .*/\1/')
key=$("$bin" api-key create --data-dir "$data" --platform "$platform" \
  --kines api@telesoin.test --scopes all | tail -n 1)

"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

# Pin the kiné in every path, so that generated requests reach past the scope check.
kine=$(curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/kines" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
printf '[parameters]\n"path.kine" = "%s"\n' "$kine" > "$data/schemathesis.toml"

# From the temporary directory: schemathesis keeps a cache (.schemathesis/) where it runs.
cd "$data"
st --config-file "$data/schemathesis.toml" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" \
  --phases examples,fuzzing,stateful \
  --no-color
