#!/usr/bin/env bash
# The one test command (README, docs/design.md §6). It does its own set-up and
# runs, in order: gofmt, go vet, the build of bench/, the tests with -race
# (the architecture and dependency checks are tests), and the demo. .ci/run
# calls it with WRIT_TEST_REQUIRE_ALL=1, which turns every skip for a
# missing dependency into a failure.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -short     # extra flags go to `go test`
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "go version"
go version

step "dependencies"
go mod download
go mod verify

step "pinned npm packages"
# Real agents and MCP clients for the acceptance tests, installed once per
# machine into a cache keyed by the exact versions (never per run).
npm_pkgs="@anthropic-ai/claude-code@2.1.332"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/writ-test/npm-$(printf '%s' "$npm_pkgs" | sha256sum | cut -c1-12)"
if command -v npm >/dev/null 2>&1; then
  claude="$cache/node_modules/@anthropic-ai/claude-code/bin/claude.exe"
  if [ ! -x "$claude" ]; then
    mkdir -p "$cache"
    (cd "$cache" && npm install --no-audit --no-fund --loglevel=error $npm_pkgs)
  fi
  # The package's postinstall puts its native binary here (npm links
  # node_modules/.bin/claude to it).
  export WRIT_TEST_CLAUDE="$claude"
  echo "claude: $("$WRIT_TEST_CLAUDE" --version 2>/dev/null || echo unavailable)"
else
  echo "npm not found: the tests that need real agents will skip (or fail with WRIT_TEST_REQUIRE_ALL=1)"
fi
# The MCP reference servers and the official inspector (the MCP gateway's
# acceptance tests), in a cache of their own so adding them did not
# reinstall the agent above.
mcp_pkgs="@modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31 @modelcontextprotocol/inspector@2.12.0"
mcp_cache="${XDG_CACHE_HOME:-$HOME/.cache}/writ-test/npm-$(printf '%s' "$mcp_pkgs" | sha256sum | cut -c1-12)"
if command -v npm >/dev/null 2>&1; then
  mcp_mods="$mcp_cache/node_modules"
  if [ ! -x "$mcp_mods/.bin/mcp-inspector" ] || [ ! -f "$mcp_mods/@modelcontextprotocol/server-everything/dist/index.js" ] ||
    [ ! -f "$mcp_mods/@modelcontextprotocol/server-filesystem/dist/index.js" ]; then
    mkdir -p "$mcp_cache"
    (cd "$mcp_cache" && npm install --no-audit --no-fund --loglevel=error $mcp_pkgs)
  fi
  # Stdio servers start as `node PATH` (never npx: each call would stall).
  export WRIT_TEST_MCP_EVERYTHING="$mcp_mods/@modelcontextprotocol/server-everything/dist/index.js"
  export WRIT_TEST_MCP_FILESYSTEM="$mcp_mods/@modelcontextprotocol/server-filesystem/dist/index.js"
  export WRIT_TEST_MCP_INSPECTOR="$mcp_mods/.bin/mcp-inspector"
  echo "mcp inspector: $("$WRIT_TEST_MCP_INSPECTOR" --version 2>/dev/null || echo unavailable)"
fi

# The Codex and Copilot CLIs (`writ hook install` checked against what they
# load), in a cache of their own so Claude Code is not reinstalled.
agent_pkgs="@openai/codex@0.171.0 @github/copilot@1.0.102"
agent_cache="${XDG_CACHE_HOME:-$HOME/.cache}/writ-test/npm-$(printf '%s' "$agent_pkgs" | sha256sum | cut -c1-12)"
if command -v npm >/dev/null 2>&1; then
  agent_bin="$agent_cache/node_modules/.bin"
  if [ ! -x "$agent_bin/codex" ] || [ ! -x "$agent_bin/copilot" ]; then
    mkdir -p "$agent_cache"
    (cd "$agent_cache" && npm install --no-audit --no-fund --loglevel=error $agent_pkgs)
  fi
  export WRIT_TEST_CODEX="$agent_bin/codex" WRIT_TEST_COPILOT="$agent_bin/copilot"
  echo "codex: $("$WRIT_TEST_CODEX" --version 2>/dev/null || echo unavailable)"
  echo "copilot: $("$WRIT_TEST_COPILOT" --version 2>/dev/null | head -1 || echo unavailable)"
fi

step "Chromium"
# The web UI's browser tests (server/webui_browser_test.go) drive Debian's
# headless Chromium through chromedp. Installed when missing and we may
# (root with apt-get); otherwise those tests skip with a message, and fail
# under WRIT_TEST_REQUIRE_ALL=1.
chromium_bin=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium_bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; } ||
    echo "installing chromium failed"
  chromium_bin=$(command -v chromium || true)
fi
if [ -n "$chromium_bin" ]; then
  export WRIT_TEST_CHROMIUM="$chromium_bin"
  echo "chromium: $("$WRIT_TEST_CHROMIUM" --version 2>/dev/null || echo unavailable)"
else
  echo "chromium not found and not installable here: the browser tests will skip (or fail with WRIT_TEST_REQUIRE_ALL=1)"
fi

step "cosign"
# cosign verifies writ's attestations in the attestation tests (a standard
# tool agreeing with writ). Built once per machine into a cache keyed by
# its pinned version (~2 min), never per run.
cosign_version=v2.6.5
cosign_dir="${XDG_CACHE_HOME:-$HOME/.cache}/writ-test/cosign-$cosign_version"
if [ ! -x "$cosign_dir/cosign" ]; then
  mkdir -p "$cosign_dir"
  GOBIN="$cosign_dir" GOFLAGS=-mod=mod go install "github.com/sigstore/cosign/v2/cmd/cosign@$cosign_version" ||
    echo "cosign could not be built: its test will skip (or fail with WRIT_TEST_REQUIRE_ALL=1)"
fi
if [ -x "$cosign_dir/cosign" ]; then
  export WRIT_TEST_COSIGN="$cosign_dir/cosign"
  echo "cosign: $("$WRIT_TEST_COSIGN" version 2>/dev/null | grep -m1 GitVersion || echo unavailable)"
fi

step "gofmt"
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"
  exit 1
fi

step "go vet"
go vet ./...

step "bench builds"
# bench/ is a module of its own (the load programs bench/run.sh measures
# with), outside ./... above: built and vetted here, never run, so it
# cannot rot. The main module's Benchmark functions are compiled by the
# test run below.
(cd bench && go build ./... && go vet ./...)

step "PostgreSQL"
# The store's tests also run on PostgreSQL (sqlstore's conformance suite).
# With WRIT_TEST_POSTGRES_DSN unset and the PostgreSQL binaries installed,
# start a throwaway cluster for this run: fsync off, no TCP (a Unix socket
# in its own temporary directory), as the postgres user when running as
# root (PostgreSQL refuses root), stopped and removed on exit.
pg_dir=""
pg_run=()
stop_postgres() {
  if [ -n "$pg_dir" ]; then
    "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
    pg_dir=""
  fi
}
start_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    pg_bin=$(dirname "$(command -v pg_ctl)")
  fi
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/pg_ctl" ]; then
    echo "PostgreSQL binaries not found: the PostgreSQL tests will skip (or fail with WRIT_TEST_REQUIRE_ALL=1)"
    return 0
  fi
  # A short path: a Unix socket's path must fit in 107 bytes.
  pg_dir=$(mktemp -d /tmp/writ-test-pg.XXXXXX) || return 1
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$pg_dir" || return 1
    pg_run=(runuser -u postgres --)
  fi
  # The port only names the socket file (listen_addresses is empty).
  local port=$((20000 + RANDOM % 30000))
  "${pg_run[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --no-sync >"$pg_dir/initdb.log" 2>&1 ||
    { cat "$pg_dir/initdb.log"; return 1; }
  # The postgres superuser connects without a password; every other role
  # (the broker's dynamic roles) must give its password, so the tests can
  # show a revoked role's password stops working.
  printf 'local all postgres trust\nlocal all all scram-sha-256\n' | "${pg_run[@]}" tee "$pg_dir/data/pg_hba.conf" >/dev/null
  "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $port -k $pg_dir -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$pg_dir/server.log"; return 1; }
  export WRIT_TEST_POSTGRES_DSN="postgres://postgres@/postgres?host=$pg_dir&port=$port&sslmode=disable"
  echo "throwaway PostgreSQL $("$pg_bin/pg_ctl" --version | awk '{print $3}') at $WRIT_TEST_POSTGRES_DSN"
}
if [ -n "${WRIT_TEST_POSTGRES_DSN:-}" ]; then
  echo "using WRIT_TEST_POSTGRES_DSN"
else
  trap stop_postgres EXIT
  trap 'exit 130' INT TERM
  if ! start_postgres; then
    stop_postgres
    echo "could not start a throwaway PostgreSQL: the PostgreSQL tests will skip (or fail with WRIT_TEST_REQUIRE_ALL=1)"
  fi
fi

step "go test -race"
# -race turns on checkptr, which makes modernc.org/sqlite several times
# slower; it is switched off for that module only (docs/design.md §6).
go test -race -gcflags='modernc.org/...=-d=checkptr=0' -timeout 20m "$@" ./...

step "demo"
go run ./cmd/writ demo

printf '\nall checks passed\n'
