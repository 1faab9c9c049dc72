#!/usr/bin/env bash
# The one test command (README, DESIGN.md §6). It does its own set-up and
# runs, in order: gofmt, go vet, the tests with -race (the architecture and
# dependency checks are tests), and the demo. .ci/run calls it with
# WRIT_TEST_REQUIRE_ALL=1, which turns every skip for a missing dependency
# into a failure.
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

step "gofmt"
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"
  exit 1
fi

step "go vet"
go vet ./...

step "go test -race"
# -race turns on checkptr, which makes modernc.org/sqlite several times
# slower; it is switched off for that module only (DESIGN.md §6).
go test -race -gcflags='modernc.org/...=-d=checkptr=0' -timeout 20m "$@" ./...

step "demo"
go run ./cmd/writ demo

printf '\nall checks passed\n'
