#!/usr/bin/env bash
# Browser tests of the web client against the real server.
#
#   tests/e2e/run.sh            # after `cargo build -p telesoin-server`
#
# Installs what is missing (Debian Chromium with apt, the npm packages with `npm ci`), type-checks
# the web client and these tests with tsc, starts `telesoin demo` on a free port with a temporary
# data directory, runs the tests with node's test runner, and stops the server. Builds no Rust.
# Env (not TELESOIN_*: the server refuses unknown TELESOIN_ settings): E2E_TELESOIN_BIN (default target/debug/telesoin), CHROMIUM (default /usr/bin/chromium),
#      FIREFOX (default /usr/bin/firefox-esr, installed with apt when missing unless E2E_NO_FIREFOX=1),
#      E2E_ONLY (a test file name filter, e.g. "a-call").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${E2E_TELESOIN_BIN:-$root/target/debug/telesoin}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ "$(id -u)" = 0 ]; then apt_get="apt-get"; else apt_get="sudo apt-get"; fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "e2e: installing Debian nodejs and npm" >&2
  $apt_get update -qq
  DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "e2e: installing Debian chromium" >&2
  $apt_get update -qq
  DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq chromium >/dev/null
fi
# The cross-engine calls (k-engines) drive Debian's Firefox ESR over WebDriver BiDi.
export FIREFOX="${FIREFOX:-/usr/bin/firefox-esr}"
if [ ! -x "$FIREFOX" ] && [ "${E2E_NO_FIREFOX:-}" != 1 ]; then
  echo "e2e: installing Debian firefox-esr" >&2
  $apt_get update -qq
  DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq firefox-esr >/dev/null || echo "e2e: firefox-esr could not be installed: the cross-engine calls are skipped" >&2
fi

cd "$here"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "e2e: tsc --checkJs (web-client)" >&2
node_modules/.bin/tsc -p "$root/web-client/tsconfig.json"
echo "e2e: tsc --checkJs (tests)" >&2
node_modules/.bin/tsc -p "$here/tsconfig.json"

if [ ! -x "$bin" ]; then
  echo "e2e: $bin is missing: run 'cargo build -p telesoin-server' first" >&2
  exit 1
fi

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
host_port="$(free_port)"
while [ "$host_port" = "$port" ]; do host_port="$(free_port)"; done

data="$(mktemp -d)"
log="$data/server.log"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "${idp_pid:-}" ]; then kill "$idp_pid" 2>/dev/null || true; wait "$idp_pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

# The OpenID provider of the Pro Santé Connect login test (tests/oidc, npm oidc-provider) on
# loopback; its test account carries the demo kiné's RPPS.
if [ ! -d "$root/tests/oidc/node_modules/oidc-provider" ]; then
  (cd "$root/tests/oidc" && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts)
fi
idp_log="$data/idp.log"
(cd "$root/tests/oidc" && exec node provider.js >"$idp_log" 2>/dev/null) &
idp_pid=$!
issuer=""
for _ in $(seq 1 100); do
  issuer="$(sed -n 's/^{"issuer":"\(.*\)"}$/\1/p' "$idp_log" 2>/dev/null | head -1)"
  [ -n "$issuer" ] && break
  sleep 0.1
done
if [ -z "$issuer" ]; then echo "e2e: the OpenID provider did not start" >&2; exit 1; fi
export TELESOIN_OIDC_ISSUER="$issuer" TELESOIN_OIDC_CLIENT_ID=telesoin \
  TELESOIN_OIDC_CLIENT_SECRET=telesoin-test-secret TELESOIN_OIDC_ALLOW_HTTP=true
export E2E_OIDC_ISSUER="$issuer"
export TELESOIN_DEMO_PASSWORD="e2e-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
# The embedding host page of scenario d lives on http://localhost:<host_port>.
export TELESOIN_EMBED_ORIGINS="http://localhost:$host_port"
# The browser uses https://localhost:<port> (the certificate's name) whatever public URL the demo picks.
export TELESOIN_ALLOWED_ORIGINS="https://localhost:$port,https://127.0.0.1:$port"
"$bin" demo --data-dir "$data" --listen "127.0.0.1:$port" >"$log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 600); do
  ready="$(grep -m1 '^TELESOIN_READY ' "$log" 2>/dev/null | sed 's/^TELESOIN_READY //' || true)"
  [ -n "$ready" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "e2e: the server exited before it was ready:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "e2e: the server did not print TELESOIN_READY within 60 s:" >&2
  cat "$log" >&2
  exit 1
fi

# The provider learns the server's redirect URIs (the port was free only now).
node -e '
  const [issuer, base] = process.argv.slice(1);
  fetch(issuer + "/__admin/setup", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ redirect_uris: [base + "/api/login/oidc/callback"], post_logout_redirect_uris: [base + "/app/"] }) })
    .then((r) => { if (!r.ok) process.exit(1); }, () => process.exit(1));
' "$issuer" "https://localhost:$port"
export E2E_READY="$ready"
export E2E_HOST_PORT="$host_port"
mkdir -p screenshots
files=(tests/*.test.js)
if [ -n "${E2E_ONLY:-}" ]; then
  files=()
  for f in tests/*"$E2E_ONLY"*.test.js; do files+=("$f"); done
fi
status=0
set +e
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}" 2>&1 | tee "$data/tests.out"
status="${PIPESTATUS[0]}"
set -e
if [ "$status" != 0 ]; then
  echo "e2e: server log (last 60 lines, join links left out):" >&2
  grep -v -e '/j#' -e '^TELESOIN_READY' "$log" | tail -n 60 >&2
  # Last, so that a log cut to its tail still names what failed.
  echo "e2e: failed (the spec reporter's summary):" >&2
  sed -n '/failing tests:/,$p' "$data/tests.out" | head -n 80 >&2
fi
echo "e2e: screenshots in $here/screenshots" >&2
exit "$status"
