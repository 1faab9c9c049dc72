#!/usr/bin/env bash
# bench/replicas.sh — the store backends and several replicas side by side
# in one run (issue 14, docs/performance.md "Several replicas"):
#   a. pgbench on the same throwaway PostgreSQL: what the database itself
#      does (-N: one UPDATE, one SELECT, one INSERT per transaction), 16
#      clients;
#   b. POST /v1/decide over HTTP: SQLite, PostgreSQL with one replica, with
#      two replicas (go test -bench BenchmarkBackendDecisions ./server);
#   c. durable events/s through the store, same three
#      (BenchmarkBackendEvents);
#   d. revocation fan-out: a run killed through replica A, until replica B
#      refuses its token (BenchmarkRevocationFanout, p50 and p99).
#
#   bench/replicas.sh            # N=3000 decisions and events per backend
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3000}
B=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
D=$(mktemp -d /tmp/writ-bench-pg.XXXXXX)
run=()
if [ "$(id -u)" = 0 ]; then chown postgres "$D"; run=(runuser -u postgres --); fi
P=$((20000 + RANDOM % 30000))
"${run[@]}" "$B/initdb" -D "$D/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
# The same settings as scripts/test.sh's cluster (fsync off: a benchmark of
# writ's path, not of this machine's disk).
"${run[@]}" "$B/pg_ctl" -D "$D/data" -l "$D/log" -w -o "-p $P -k $D -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
trap '"${run[@]}" "$B/pg_ctl" -D "$D/data" -m immediate stop >/dev/null 2>&1; rm -rf "$D"' EXIT
export WRIT_TEST_POSTGRES_DSN="postgres://postgres@/postgres?host=$D&port=$P&sslmode=disable"

echo "== a. pgbench -N, 16 clients, 15 s"
"${run[@]}" "$B/pgbench" -h "$D" -p "$P" -U postgres -i -q -s 10 postgres >/dev/null 2>&1
"${run[@]}" "$B/pgbench" -h "$D" -p "$P" -U postgres -N -c 16 -j 2 -T 15 postgres 2>/dev/null | grep -E "^tps|latency average"

echo "== b-d. writ"
go test ./server/ -run '^$' -bench 'BenchmarkBackend|BenchmarkRevocationFanout' -benchtime "${N}x" -timeout 30m |
  grep -E '^Benchmark'
