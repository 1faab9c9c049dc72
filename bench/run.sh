#!/usr/bin/env bash
# bench/run.sh — writ's performance, each figure next to a peer, in one run
# (docs/design.md §6). Results and the commands behind them: docs/performance.md.
#
#   bench/run.sh                 # everything, a few minutes on 2 cores
#   N=2000 bench/run.sh          # fewer runs per load step
#
# It builds writ and the load program once into bench/out/ (gitignored),
# starts `writ serve --dev` on SQLite (durability normal) on a free port, and
# measures:
#   a. resident memory of the idle server;
#   b. resident memory once 1,000 runs are active;
#   c. run start over HTTP, pre-signed unique triggers, at c = 1, 4, 16;
#   d. the same against the floor peer (bench/runstart -peer), interleaved
#      (each writ step on a fresh server, as each floor step is);
#   e. run start on one server as active runs accumulate (ROUNDS × N);
#   f. trigger verification per second (go test -bench=Verify ./trigger/),
#      against the raw crypto floor, and one SSH trigger verified by
#      `ssh-keygen -Y verify` versus `writ trigger verify`, per process;
#   g. the in-process benchmarks of the same paths (server, sqlstore);
#   h. a CPU profile of the in-process run start benchmark, summarised;
#   i. identity (issue 3): JWT-SVID mint and verify and DPoP proof verify per
#      second per core (go test -bench ./token/) against the raw ES256
#      floor; the per-request cost of authenticating GET /v1/runs/{id}
#      through the handler (go test -bench ./httpapi/): human API token,
#      run bearer token (cache warm, then cold) and run DPoP token with a
#      fresh proof; a CPU profile of the DPoP request, summarised; and the
#      peer, `spire-server jwt mint`, one process per token, only when asked:
#        SPIRE_BIN=DIR       DIR holds a spire-server binary;
#        BUILD_SPIRE=1       build spire-server v1.13.3 once into
#                            ${XDG_CACHE_HOME:-~/.cache}/writ-bench/ (~5 min;
#                            CONTRIBUTING.md §7); otherwise "SPIRE: not measured".
#
#   j. the audit log (issue 4): durable events per second through the store
#      (DB.AppendEvent, group commit, durability normal and full; alone and
#      with the integrator running) against a plain insert of the same rows
#      into SQLite (autocommit, and one transaction); commit -> signed
#      checkpoint latency under a steady load of 1,000 to 10,000 events/s
#      (a whole in-process server; fresh, and on a 1,000,000-entry log);
#      inclusion proofs at 1,000,000 entries (store and HTTP, beside the
#      in-memory auditlog); `writ audit export` of that log and its offline
#      `writ audit verify --export`, beside the in-memory auditlog.Verify;
#      CPU profiles of the append + integrate path, summarised. The
#      1,000,000-entry log is built once (about 2.5 minutes) into
#      ${WRIT_BENCH_CACHE:-${XDG_CACHE_HOME:-~/.cache}/writ-bench}/audit-1m
#      and reused while it is there.
# Raw output lands in bench/out/results/.
#
#   ONLY=identity bench/run.sh   # step i alone (about 35 s, 1 min 30 s with BENCH_COUNT=3; plus SPIRE)
#   BENCH_COUNT=3 ...            # step i: -count for go test (medians reported)
#   BENCHTIME=1s ...             # step i: -benchtime for go test
#   ONLY=audit bench/run.sh      # step j alone (about 7 minutes, plus 2.5 to build the 1M log once)
#   AUDIT_COUNT=3 ...            # step j: -count for the throughput benchmarks (medians reported)
#   AUDIT_N=100000 ...           # step j: events per throughput benchmark
#   AUDIT_LOAD_SECONDS=10 ...    # step j: seconds measured per latency load (after 1 s warm-up)
#   AUDIT_LOAD_RATES="1000 5000 10000" ...  # step j: the latency loads, events/s
#
#   k. policy decisions: the default bundle's Bundle.Eval and the decision
#      point's Point.Decide (real engine, real SQLite store) in process
#      (go test -bench ./policy/ ./decision/); POST /v1/decide of a writ dev
#      server beside `opa run --server` on the same bundle, config and
#      input, driven by the same load generator (bench/policy) at fixed
#      rates and at saturation; CPU profiles of both under saturation,
#      summarised; the memory the default bundle adds to a process, and the
#      RSS of an idle `writ serve --dev` beside the same server built from
#      b2e2283, the last commit without the policy engine. OPA v1.22.3 is
#      built once into ${XDG_CACHE_HOME:-~/.cache}/writ-bench/bin (about
#      1 minute; CONTRIBUTING.md §7), or taken from OPA_BIN=DIR.
#
#   ONLY=policy bench/run.sh     # step k alone (about 3 minutes, plus 1 to build OPA once)
#   POLICY_RATES="250 1000" ...  # step k: fixed rates, decisions/s (the default)
#   POLICY_C="16 64" ...         # step k: saturation, concurrent clients (the default)
#   POLICY_SECONDS=10 ...        # step k: seconds measured per load (after 1 s warm-up)
#   POLICY_COUNT=1 ...           # step k: -count for the in-process benchmarks (default 3, medians reported)
#
#   l. hook adapters: `writ hook claude-code` as Claude Code runs it, one
#      process per tool call with its decision, against a writ dev server in
#      the benchmark's process (go test -bench HookProcess ./cmd/writ, the
#      writ binary of bench/out), beside the same POST /v1/decide from the
#      benchmark (new connection, keep-alive) and by curl, `writ version`, a
#      minimal Go program and /bin/true; the PostToolUse hook, the hook with
#      a DPoP key and with writ down; the package inits of `writ version`
#      (GODEBUG=inittrace=1).
#
#   ONLY=hook bench/run.sh       # step l alone (about 1 minute)
#   HOOK_N=300 ...               # step l: calls per case (-benchtime Nx)
#   HOOK_COUNT=3 ...             # step l: -count (medians reported)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
RES=$OUT/results
N=${N:-5000}
CONCURRENCY=${CONCURRENCY:-"1 4 16"}
ROUNDS=${ROUNDS:-6}
REPEAT=${REPEAT:-3}
mkdir -p "$OUT" "$RES"
rm -f "$RES"/*

WORK=$(mktemp -d "${TMPDIR:-/tmp}/writ-bench-XXXXXX")
SERVER_PID=""
SPIRE_PID=""
cleanup() {
  for pid in "$SERVER_PID" "$SPIRE_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*" >&2; }

step "machine"
{
  echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cores:  $(nproc)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "go:     $(go version)"
  echo "kernel: $(uname -sr)"
  echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, before the run)"
} | tee "$RES/machine.txt" >&2
# Every figure below is relative to a peer measured in the same run, but
# another busy process on the machine still skews them: say so.
if awk '{exit !($1 > 0.5)}' /proc/loadavg; then
  echo "warning: the 1-minute load average is $(cut -d' ' -f1 /proc/loadavg) before the run; something else is using the CPU" >&2
fi

# ---- i. identity ---------------------------------------------------------------
# Defined before the other steps so that ONLY=identity runs it alone.

SPIRE_VERSION=v1.13.3
SPIRE_LOOPS=${SPIRE_LOOPS:-50}
SPIRE_RESULT="not measured (set SPIRE_BIN=DIR or BUILD_SPIRE=1 to measure spire-server jwt mint)"

# median_of FILE BENCH UNIT: the median, over -count repetitions, of the
# value before UNIT on the lines of benchmark BENCH (no -N suffix) in FILE.
median_of() {
  awk -v b="$2" -v u="$3" '$1 ~ "^"b"(-[0-9]+)?$" {for (i=2;i<NF;i++) if ($(i+1)==u) print $i}' "$1" | sort -g |
    awk '{v[++n]=$1} END {if (!n) print "?"; else print (n%2 ? v[(n+1)/2] : (v[n/2]+v[n/2+1])/2)}'
}
# ms_per_call N CMD...: mean ms per call of CMD over N calls, after 5 warm-up calls.
ms_per_call() {
  local n=$1 t0 t1
  shift
  for _ in 1 2 3 4 5; do "$@" >/dev/null 2>&1; done
  t0=$(date +%s%N)
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1; done
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN {printf "%.2f", (b-a)/n/1e6}'
}

# spire_dir prints the directory holding spire-server: SPIRE_BIN, or the
# tool cache (built there first when BUILD_SPIRE=1); nothing when neither.
spire_dir() {
  if [ -n "${SPIRE_BIN:-}" ]; then
    [ -x "$SPIRE_BIN/spire-server" ] || { echo "SPIRE_BIN=$SPIRE_BIN holds no executable spire-server" >&2; return 1; }
    echo "$SPIRE_BIN"
    return 0
  fi
  [ "${BUILD_SPIRE:-0}" = 1 ] || return 0
  # Outside the clone, once per machine (CONTRIBUTING.md §7): a scratch
  # module that pins spire-server as a tool, then go install (a plain
  # `go install …@version` is refused for SPIRE).
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/writ-bench/spire-$SPIRE_VERSION
  if [ ! -x "$cache/bin/spire-server" ]; then
    echo "building spire-server $SPIRE_VERSION into $cache (about 5 minutes, once; log in $RES/spire-build.log)" >&2
    mkdir -p "$cache/mod"
    if ! (cd "$cache/mod" &&
      { [ -f go.mod ] || go mod init writ-bench/spire; } &&
      go get -tool "github.com/spiffe/spire/cmd/spire-server@$SPIRE_VERSION" &&
      GOBIN=$cache/bin go install github.com/spiffe/spire/cmd/spire-server) >"$RES/spire-build.log" 2>&1; then
      echo "building spire-server failed; see $RES/spire-build.log" >&2
      return 1
    fi
  fi
  echo "$cache/bin"
}

# spire_measure DIR: start spire-server from DIR (SQLite datastore, keys in
# memory, P-256 JWT key so tokens are ES256 like writ's, trust domain
# writ.bench, 127.0.0.1 only) and time `spire-server jwt mint`, one process
# per token, and, as the floor of a process, `spire-server --version`.
spire_measure() {
  local bin=$1/spire-server d=$WORK/spire
  mkdir -p "$d/data"
  printf '%s\n' \
    'server {' \
    '  bind_address = "127.0.0.1"' \
    "  bind_port = \"${SPIRE_PORT:-18081}\"" \
    "  socket_path = \"$d/api.sock\"" \
    '  trust_domain = "writ.bench"' \
    "  data_dir = \"$d/data\"" \
    '  log_level = "WARN"' \
    '  ca_key_type = "ec-p256"' \
    '  jwt_key_type = "ec-p256"' \
    '}' \
    'plugins {' \
    '  DataStore "sql" {' \
    '    plugin_data {' \
    '      database_type = "sqlite3"' \
    "      connection_string = \"$d/data/datastore.sqlite3\"" \
    '    }' \
    '  }' \
    '  KeyManager "memory" {' \
    '    plugin_data {}' \
    '  }' \
    '  NodeAttestor "join_token" {' \
    '    plugin_data {}' \
    '  }' \
    '}' >"$d/server.conf"
  "$bin" run -config "$d/server.conf" >"$d/server.log" 2>&1 &
  SPIRE_PID=$!
  local ok=""
  for _ in $(seq 300); do
    kill -0 "$SPIRE_PID" 2>/dev/null || break
    if "$bin" healthcheck -socketPath "$d/api.sock" >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    cp "$d/server.log" "$RES/spire-server.log"
    echo "spire-server did not become healthy; see $RES/spire-server.log" >&2
    SPIRE_RESULT="not measured (spire-server did not start; see $RES/spire-server.log)"
    return 0
  fi
  spire_mint() { "$bin" jwt mint -socketPath "$d/api.sock" -spiffeID spiffe://writ.bench/agent/bench/run/01 -audience x; }
  if ! spire_mint >"$RES/spire-token.jwt" 2>"$RES/spire-mint.err"; then
    echo "spire-server jwt mint failed; see $RES/spire-mint.err" >&2
    SPIRE_RESULT="not measured (spire-server jwt mint failed; see $RES/spire-mint.err)"
    return 0
  fi
  local hdr alg mint_ms version_ms
  hdr=$(tr -d ' \n' <"$RES/spire-token.jwt" | cut -d. -f1 | tr '_-' '/+')
  while [ $((${#hdr} % 4)) -ne 0 ]; do hdr="$hdr="; done
  alg=$(printf '%s' "$hdr" | base64 -d 2>/dev/null | jq -r .alg 2>/dev/null || echo "?")
  mint_ms=$(ms_per_call "$SPIRE_LOOPS" spire_mint)
  version_ms=$(ms_per_call "$SPIRE_LOOPS" "$bin" --version)
  kill "$SPIRE_PID" 2>/dev/null || true
  wait "$SPIRE_PID" 2>/dev/null || true
  SPIRE_PID=""
  printf 'spire-server jwt mint %s ms/process (alg %s); spire-server --version %s ms/process; mean of %s calls after 5 warm-up\n' \
    "$mint_ms" "$alg" "$version_ms" "$SPIRE_LOOPS" | tee "$RES/spire.txt" >&2
  SPIRE_RESULT="$mint_ms ms per token, one process per \`spire-server jwt mint\` (alg $alg); a process that only prints its version takes $version_ms ms: the figure is process start plus a gRPC call on the admin socket, not the signature"
}

identity_step() {
  step "i. identity: token mint/verify (./token/), per-request authentication (./httpapi/), SPIRE peer"
  go test -run='^$' -bench=. -benchmem -benchtime="${BENCHTIME:-1s}" -count="${BENCH_COUNT:-1}" ./token/ | tee "$RES/token.txt" >&2
  go test -run='^$' -bench=. -benchmem -benchtime="${BENCHTIME:-1s}" -count="${BENCH_COUNT:-1}" ./httpapi/ | tee "$RES/httpapi.txt" >&2
  go test -run='^$' -bench='AuthRunDPoP$' -benchtime=10000x -cpuprofile "$RES/dpop-cpu.prof" -o "$OUT/httpapi.test" ./httpapi/ >&2
  go tool pprof -top -cum -nodecount=60 "$OUT/httpapi.test" "$RES/dpop-cpu.prof" >"$RES/dpop-cpu.top" 2>/dev/null
  go tool pprof -top -cum -nodecount=3000 "$OUT/httpapi.test" "$RES/dpop-cpu.prof" >"$RES/dpop-cpu-all.top" 2>/dev/null
  local dir
  if dir=$(spire_dir) && [ -n "$dir" ]; then
    spire_measure "$dir"
  elif [ -n "${SPIRE_BIN:-}" ] || [ "${BUILD_SPIRE:-0}" = 1 ]; then
    SPIRE_RESULT="not measured (no spire-server; see the message above)"
  fi
}

identity_summary() {
  local tk=$RES/token.txt ha=$RES/httpapi.txt
  tok() { median_of "$tk" "Benchmark$1" "$2"; }
  api() { median_of "$ha" "Benchmark$1" "$2"; }
  rate() { awk -v ns="$1" 'BEGIN {if (ns > 0) printf "%.0f", 1e9/ns; else print "?"}'; }
  rat() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "?"}'; }
  us() { awk -v ns="$1" 'BEGIN {if (ns > 0) printf "%.1f", ns/1e3; else print "?"}'; }
  sub_() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a-b}'; }
  echo "identity: tokens per second per core, in process (go test -bench ./token/; one goroutine per benchmark)"
  for pair in "Mint RawES256Sign" "Verify RawES256Verify" "VerifyProof RawES256Verify" "Proof RawES256Sign"; do
    set -- $pair
    v=$(tok "$1" ns/op) r=$(tok "$2" ns/op)
    printf '  %-12s %8s/s %8s us   raw %-15s %8s/s   overhead x%s\n' "$1" "$(rate "$v")" "$(us "$v")" "$2" "$(rate "$r")" "$(rat "$v" "$r")"
  done
  printf '  goal >= 20,000 mints/s per core: %s\n' "$(awk -v ns="$(tok Mint ns/op)" 'BEGIN {print (ns > 0 && 1e9/ns >= 20000) ? "met" : "NOT met"}')"
  echo
  echo "identity: authenticating GET /v1/runs/{id} through the handler (go test -bench ./httpapi/; one request at a time)"
  printf '  %-20s %9s %8s %8s   %s\n' benchmark us/op p50_us p99_us "p50 against the human token"
  local h50 b50 c50 d50
  h50=$(api AuthHuman p50-us)
  for b in AuthHuman AuthRunBearer AuthRunBearerCold AuthRunDPoP; do
    printf '  %-20s %9s %8s %8s   x%s\n' "$b" "$(us "$(api "$b" ns/op)")" "$(api "$b" p50-us)" "$(api "$b" p99-us)" "$(rat "$(api "$b" p50-us)" "$h50")"
  done
  b50=$(api AuthRunBearer p50-us) c50=$(api AuthRunBearerCold p50-us) d50=$(api AuthRunDPoP p50-us)
  printf '  run bearer - human: %s us p50; cold - warm cache (the state check reading SQLite): %s us p50\n' "$(sub_ "$b50" "$h50")" "$(sub_ "$c50" "$b50")"
  printf '  DPoP - run bearer: %s us p50; goal <= 60 us: %s\n' "$(sub_ "$d50" "$b50")" \
    "$(awk -v a="$d50" -v b="$b50" 'BEGIN {print (a != "?" && b != "?" && a-b <= 60) ? "met" : "NOT met"}')"
  printf '  pieces alone: token verify %s us, proof verify %s us, replay insert %s us, GetRun %s us, GetToken %s us\n' \
    "$(us "$(api AuthParts/VerifyToken ns/op)")" "$(us "$(api AuthParts/VerifyProof ns/op)")" "$(us "$(api AuthParts/UseProof ns/op)")" \
    "$(us "$(api AuthParts/GetRun ns/op)")" "$(us "$(api AuthParts/GetToken ns/op)")"
  printf '  16 at a time: run bearer %s us/op, DPoP %s us/op\n' "$(us "$(api AuthRunBearerParallel ns/op)")" "$(us "$(api AuthRunDPoPParallel ns/op)")"
  printf '  run start (POST /v1/runs), one at a time: %s us p50, with a DPoP proof %s us p50\n' "$(api StartRunBearer p50-us)" "$(api StartRunDPoP p50-us)"
  echo
  echo "identity: where the time goes (BenchmarkAuthRunDPoP, 10,000 requests; cumulative CPU, % of all samples)"
  local item name re
  for item in \
    "all samples|Total samples" \
    "handler, whole request|httpapi\\.\\(\\*API\\)\\.ServeHTTP$" \
    "  authenticateRun|httpapi\\.\\(\\*API\\)\\.authenticateRun$" \
    "    token.Verify (the run token)|token\\.\\(\\*Verifier\\)\\.Verify$" \
    "    token.VerifyProof|token\\.VerifyProof$" \
    "    UseProof, request side|sqlstore\\.\\(\\*DB\\)\\.UseProof$" \
    "  showRun (GetRun, JSON)|httpapi\\.\\(\\*API\\)\\.showRun$" \
    "ECDSA verify (token and proof)|crypto/ecdsa\\.VerifyASN1$" \
    "store writer (replay inserts)|sqlstore\\.\\(\\*DB\\)\\.writer$" \
    "proof making (setup, untimed)|token\\.Proof$" \
    "GC background marking|runtime\\.gcBgMarkWorker$"; do
    name=${item%%|*} re=${item#*|}
    if [ "$re" = "Total samples" ]; then
      printf '  %-36s %s\n' "$name" "$(grep -o 'Total samples = [^ ]*' "$RES/dpop-cpu-all.top" | cut -d' ' -f4)"
    else
      printf '  %-36s %s\n' "$name" "$(RE="$re" awk '$6 ~ ENVIRON["RE"] {print $4" "$5; f=1; exit} END {if (!f) print "below the cut-off"}' "$RES/dpop-cpu-all.top")"
    fi
  done
  echo
  echo "SPIRE: $SPIRE_RESULT"
}

# ---- j. audit log --------------------------------------------------------------
# Defined before the other steps so that ONLY=audit runs it alone.

AUDIT_N=${AUDIT_N:-100000}
AUDIT_PROOFS=${AUDIT_PROOFS:-20000}
AUDIT_VERIFY_REPEAT=${AUDIT_VERIFY_REPEAT:-3}
AUDIT_COUNT=${AUDIT_COUNT:-1}
export WRIT_BENCH_CACHE=${WRIT_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/writ-bench}
AUDIT_CACHE=$WRIT_BENCH_CACHE/audit-1m
export WRIT_AUDIT_LOAD_SECONDS=${AUDIT_LOAD_SECONDS:-10}
export WRIT_AUDIT_LOAD_RATES=${AUDIT_LOAD_RATES:-"1000 5000 10000"}

audit_step() {
  step "j. audit log: durable events/s against a plain insert, commit -> checkpoint latency, 1,000,000 entries: proofs, export, offline verify"
  go build -o "$OUT/writ" ./cmd/writ
  cut -d' ' -f1-3 /proc/loadavg >"$RES/audit-load-before.txt"

  echo "j1. the 1,000,000-entry log in $AUDIT_CACHE" >&2
  if [ ! -f "$AUDIT_CACHE/build.json" ]; then
    echo "not cached: building it (about 2.5 minutes on 2 cores, once)" >&2
  fi
  go test -run='^$' -bench='^BenchmarkAuditBuild1M$' -benchtime=1x -timeout=60m ./server/ | tee "$RES/audit-build.txt" >&2
  cp "$AUDIT_CACHE/build.json" "$RES/audit-build.json"

  echo "j2. durable events/s: the store alone and the peer (sqlstore), then with the integrator (server); $AUDIT_N events each, $AUDIT_COUNT times" >&2
  go test -run='^$' -bench='^BenchmarkAudit(Append|PeerInsert)$' -benchmem -benchtime="${AUDIT_N}x" -count="$AUDIT_COUNT" -timeout=60m ./sqlstore/ | tee "$RES/audit-append.txt" >&2
  # With the integrator: on a fresh log, and on a copy of the 1,000,000-entry log.
  go test -run='^$' -bench='^BenchmarkAuditAppendIntegrated$' -benchmem -benchtime="${AUDIT_N}x" -count="$AUDIT_COUNT" -timeout=60m ./server/ | tee "$RES/audit-integrated.txt" >&2

  echo "j3. commit -> signed checkpoint latency, $WRIT_AUDIT_LOAD_SECONDS s per load at $WRIT_AUDIT_LOAD_RATES events/s" >&2
  go test -run='^$' -bench='^BenchmarkAuditCheckpointLatency$' -benchtime=1x -timeout=60m ./server/ | tee "$RES/audit-latency.txt" >&2

  echo "j4. inclusion proofs at 1,000,000 entries: store and HTTP, then the in-memory auditlog (its peer)" >&2
  go test -run='^$' -bench='^BenchmarkAuditInclusionProof1M$' -benchmem -benchtime="${AUDIT_PROOFS}x" -timeout=30m ./server/ | tee "$RES/audit-proof.txt" >&2
  go test -run='^$' -bench='^Benchmark(InclusionProof|CheckInclusion)$' -benchmem -timeout=30m ./auditlog/ | tee "$RES/audit-mem.txt" >&2
  go test -run='^$' -bench='^BenchmarkVerify$/^entries=1000000$' -benchmem -benchtime=3x -timeout=30m ./auditlog/ | tee -a "$RES/audit-mem.txt" >&2

  echo "j5. writ audit export of the 1,000,000-entry log (writ serve on a copy), then writ audit verify --export, $AUDIT_VERIFY_REPEAT times" >&2
  local a=$WORK/audit-1m x=$WORK/audit-1m.jsonl token url="" key t0 t1 r
  rm -rf "$a"
  cp -a "$AUDIT_CACHE" "$a"
  token=$("$OUT/writ" token create --bootstrap --config "$a/writ.yaml" --human dev 2>/dev/null)
  "$OUT/writ" serve --config "$a/writ.yaml" --listen 127.0.0.1:0 >"$WORK/audit-serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    url=$(awk '/msg="writ serving"/ {for (i=1;i<=NF;i++) if ($i ~ /^addr=/) {print "http://" substr($i, 6); exit}}' "$WORK/audit-serve.log")
    [ -n "$url" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/audit-serve.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "writ serve did not start; see $WORK/audit-serve.log" >&2; exit 1; }
  key=$(curl -fsS -H "Authorization: Bearer $token" "$url/v1/audit/key" | jq -r .key)
  echo "$key" >"$RES/audit-log.pub"
  # What an idle server with a 1,000,000-entry log costs: its CPU over 10 s
  # with no requests, after its start-up events are logged.
  sleep 3
  local c0 c1
  c0=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
  sleep 10
  c1=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
  echo "idle_cpu_pct $(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b-a)/hz/10*100}')" >"$RES/audit-idle.txt"
  t0=$(date +%s%N)
  WRIT_URL=$url WRIT_TOKEN=$token "$OUT/writ" audit export -o "$x"
  t1=$(date +%s%N)
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  {
    echo "export_s $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b-a)/1e9}')"
    echo "entries $(($(wc -l <"$x") - 1))"
    echo "bytes $(stat -c %s "$x")"
    echo "checkpoints $(head -1 "$x" | jq '.checkpoints | length')"
  } >"$RES/audit-export.txt"
  for r in $(seq "$AUDIT_VERIFY_REPEAT"); do
    /usr/bin/time -f '%e %M %U %S' -o "$RES/audit-verify-$r.time" \
      "$OUT/writ" audit verify --export "$x" --key "$key" --no-pin --trust-file "$WORK/audit-trust.json" >"$RES/audit-verify.out"
    echo "verify $r: $(cat "$RES/audit-verify-$r.time") (elapsed s, max RSS kB, user s, sys s): $(cat "$RES/audit-verify.out")" >&2
  done
  cat "$RES/audit-export.txt" >&2
  rm -rf "$a" "$x"

  echo "j6. where the time goes: CPU profiles of the append + integrate path (fresh log; then the 1,000,000-entry log at 1,000 events/s)" >&2
  go test -run='^$' -bench='^BenchmarkAuditAppendIntegrated$/^normal$/^c=64$' -benchtime="${AUDIT_N}x" \
    -cpuprofile "$RES/audit-cpu.prof" -o "$OUT/server-audit.test" ./server/ | tee "$RES/audit-cpu-bench.txt" >&2
  go tool pprof -top -cum -nodecount=60 "$OUT/server-audit.test" "$RES/audit-cpu.prof" >"$RES/audit-cpu.top" 2>/dev/null
  go tool pprof -top -cum -nodecount=3000 "$OUT/server-audit.test" "$RES/audit-cpu.prof" >"$RES/audit-cpu-all.top" 2>/dev/null
  WRIT_AUDIT_LOAD_RATES=1000 go test -run='^$' -bench='^BenchmarkAuditCheckpointLatency$/^append-1m$' -benchtime=1x -timeout=30m \
    -cpuprofile "$RES/audit-1m-cpu.prof" -o "$OUT/server-audit.test" ./server/ | tee "$RES/audit-1m-cpu-bench.txt" >&2
  go tool pprof -top -cum -nodecount=3000 "$OUT/server-audit.test" "$RES/audit-1m-cpu.prof" >"$RES/audit-1m-cpu-all.top" 2>/dev/null
  go test -run='^$' -bench='^BenchmarkAuditInclusionProof1M$/^http$' -benchtime="${AUDIT_PROOFS}x" -timeout=30m \
    -cpuprofile "$RES/audit-proof-cpu.prof" -o "$OUT/server-audit.test" ./server/ | tee "$RES/audit-proof-cpu-bench.txt" >&2
  go tool pprof -top -cum -nodecount=3000 "$OUT/server-audit.test" "$RES/audit-proof-cpu.prof" >"$RES/audit-proof-cpu-all.top" 2>/dev/null
}

audit_summary() {
  local ap=$RES/audit-append.txt ai=$RES/audit-integrated.txt lat=$RES/audit-latency.txt pr=$RES/audit-proof.txt mem=$RES/audit-mem.txt
  m() { median_of "$1" "Benchmark$2" "$3"; }
  rat() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "?" && b != "?" && b > 0) printf "%.2f", a/b; else print "?"}'; }
  r0() { awk -v a="$1" 'BEGIN {if (a == "?" || a == "") print "?"; else printf "%.0f", a}'; }
  echo "audit log: durable events/s, one event per request, $AUDIT_N events per row (goal >= 20,000/s on 2 cores)"
  local d c w p1 p64 tx
  for d in normal full; do
    p1=$(m "$ap" "AuditPeerInsert/$d/autocommit/c=1" events/s)
    p64=$(m "$ap" "AuditPeerInsert/$d/autocommit/c=64" events/s)
    tx=$(m "$ap" "AuditPeerInsert/$d/onetx" events/s)
    echo "  durability $d"
    printf '    %-46s %9s %10s %14s %14s\n' "" events/s reqs/batch "/ peer c=64" "/ peer one-tx"
    for c in 1 16 64 256; do
      w=$(m "$ap" "AuditAppend/$d/c=$c" events/s)
      printf '    %-46s %9s %10s %14s %14s\n' "writ store alone, c=$c" "$(r0 "$w")" "$(m "$ap" "AuditAppend/$d/c=$c" reqs/batch)" "$(rat "$w" "$p64")" "$(rat "$w" "$tx")"
    done
    for c in 64 256; do
      w=$(m "$ai" "AuditAppendIntegrated/$d/c=$c" logged-events/s)
      printf '    %-46s %9s %10s %14s %14s   (acked %s/s; %s entries per checkpoint)\n' "writ with the integrator, c=$c (logged)" "$(r0 "$w")" "" "$(rat "$w" "$p64")" "$(rat "$w" "$tx")" \
        "$(r0 "$(m "$ai" "AuditAppendIntegrated/$d/c=$c" acked-events/s)")" "$(r0 "$(m "$ai" "AuditAppendIntegrated/$d/c=$c" entries/checkpoint)")"
    done
    if [ "$d" = normal ]; then
      for c in 64 256; do
        w=$(m "$ai" "AuditAppendIntegrated/1m/normal/c=$c" logged-events/s)
        printf '    %-46s %9s %10s %14s %14s   (acked %s/s; %s entries per checkpoint)\n' "same, on the 1,000,000-entry log, c=$c" "$(r0 "$w")" "" "$(rat "$w" "$p64")" "$(rat "$w" "$tx")" \
          "$(r0 "$(m "$ai" "AuditAppendIntegrated/1m/normal/c=$c" acked-events/s)")" "$(r0 "$(m "$ai" "AuditAppendIntegrated/1m/normal/c=$c" entries/checkpoint)")"
      done
    fi
    printf '    %-46s %9s\n' "peer: plain INSERT, autocommit, c=1" "$(r0 "$p1")"
    printf '    %-46s %9s\n' "peer: plain INSERT, autocommit, c=64" "$(r0 "$p64")"
    printf '    %-46s %9s\n' "peer: one transaction (upper bound)" "$(r0 "$tx")"
    [ "$d" = normal ] && printf '    %-46s %9s\n' "peer: one transaction into writ's outbox" "$(r0 "$(m "$ap" "AuditPeerInsert/normal/onetx-writ-schema" events/s)")"
  done
  goal20k() { # BENCH-prefix FILE UNIT: the best of c=64 and c=256 against 20,000/s
    awk -v a="$(m "$2" "$1/c=64" "$3")" -v b="$(m "$2" "$1/c=256" "$3")" 'BEGIN {x = (a+0 > b+0 ? a : b); printf "%s (%.0f/s)", (x+0 >= 20000) ? "met" : "NOT met", x}'
  }
  printf '  goal >= 20,000 durable events/s, durability normal, best of c=64 and c=256:\n'
  printf '    the store alone:                                 %s\n' "$(goal20k AuditAppend/normal "$ap" events/s)"
  printf '    with the integrator, fresh log, until logged:    %s\n' "$(goal20k AuditAppendIntegrated/normal "$ai" logged-events/s)"
  printf '    with the integrator, 1,000,000-entry log:        %s\n' "$(goal20k AuditAppendIntegrated/1m/normal "$ai" logged-events/s)"
  echo
  echo "audit log: commit -> signed checkpoint, $WRIT_AUDIT_LOAD_SECONDS s per load after 1 s warm-up (goal p99 <= 1 s; Tessera ~3 s, Rekor v2 p95 < 10 s)"
  printf '  %-22s %9s %8s %8s %8s %8s %9s %9s %8s %6s\n' load events/s p50_ms p90_ms p99_ms max_ms ack_p50 ack_p99 cps/s cores
  local k rate b worst=0
  for k in append runs append-1m; do
    for rate in $WRIT_AUDIT_LOAD_RATES; do
      b="AuditCheckpointLatency/$k/rate=$rate"
      [ "$(m "$lat" "$b" p99-ms)" = "?" ] && continue
      printf '  %-22s %9s %8s %8s %8s %8s %9s %9s %8s %6s\n' "$k @ $rate" "$(r0 "$(m "$lat" "$b" events/s)")" "$(m "$lat" "$b" p50-ms)" \
        "$(m "$lat" "$b" p90-ms)" "$(m "$lat" "$b" p99-ms)" "$(m "$lat" "$b" max-ms)" "$(m "$lat" "$b" ack-p50-ms)" "$(m "$lat" "$b" ack-p99-ms)" \
        "$(m "$lat" "$b" checkpoints/s)" "$(m "$lat" "$b" cpu-cores)"
    done
  done
  echo "  (ack_*: scheduled -> acknowledged, ms; cps/s: signed checkpoints per second; cores: CPU of server and load generator together)"
  awk '$1 ~ /^BenchmarkAuditCheckpointLatency\// {for (i=2;i<NF;i++) if ($(i+1)=="p99-ms") {split($1, n, "/"); v=$i+0; sub(/-[0-9]+$/, "", n[3]); print (v <= 1000 ? "  met    " : "  NOT met") " p99 <= 1 s: " n[2] " @ " substr(n[3], 6) " events/s, p99 " v " ms"}}' "$lat"
  echo
  echo "audit log: the 1,000,000-entry log ($AUDIT_CACHE)"
  jq -r '"  built \(.built) at load \(.loadAverageThen | split(" ")[0:3] | join(" ")): appended in \(.appendSeconds | . * 10 | round / 10) s, all logged in \(.loggedSeconds | . * 10 | round / 10) s (\(.entries / .loggedSeconds | round) events/s), \(.checkpoints) checkpoints, \(.dbBytes / 1e6 | round) MB"' "$RES/audit-build.json"
  echo
  echo "audit log: inclusion proof at 1,000,000 entries, random indexes, one at a time (goal p99 < 1 ms)"
  printf '  %-44s %9s %9s %9s %9s\n' "" p50_us p90_us p99_us max_us
  printf '  %-44s %9s %9s %9s %9s\n' "store (Log.InclusionProof over SQLite)" "$(m "$pr" AuditInclusionProof1M/store p50-us)" "$(m "$pr" AuditInclusionProof1M/store p90-us)" "$(m "$pr" AuditInclusionProof1M/store p99-us)" "$(m "$pr" AuditInclusionProof1M/store max-us)"
  printf '  %-44s %9s %9s %9s %9s\n' "HTTP GET /v1/audit/proof/inclusion" "$(m "$pr" AuditInclusionProof1M/http p50-us)" "$(m "$pr" AuditInclusionProof1M/http p90-us)" "$(m "$pr" AuditInclusionProof1M/http p99-us)" "$(m "$pr" AuditInclusionProof1M/http max-us)"
  printf '  %-44s %9s %9s %9s %9s\n' "HTTP, the same server with its loops stopped" "$(m "$pr" AuditInclusionProof1M/http-no-loops p50-us)" "$(m "$pr" AuditInclusionProof1M/http-no-loops p90-us)" "$(m "$pr" AuditInclusionProof1M/http-no-loops p99-us)" "$(m "$pr" AuditInclusionProof1M/http-no-loops max-us)"
  printf '  %-44s %9s %9s %9s\n' "peer: in-memory auditlog (memStore)" "$(awk -v v="$(m "$mem" InclusionProof p50-ns)" 'BEGIN {printf "%.1f", v/1e3}')" "" "$(awk -v v="$(m "$mem" InclusionProof p99-ns)" 'BEGIN {printf "%.1f", v/1e3}')"
  printf '  idle writ serve with this log: %s %% of one core (the integrator'"'"'s once-a-second pass)\n' "$(awk '$1=="idle_cpu_pct" {print $2}' "$RES/audit-idle.txt")"
  printf '  goal p99 < 1 ms: store %s, HTTP %s\n' \
    "$(awk -v v="$(m "$pr" AuditInclusionProof1M/store p99-us)" 'BEGIN {print (v != "?" && v < 1000) ? "met" : "NOT met"}')" \
    "$(awk -v v="$(m "$pr" AuditInclusionProof1M/http p99-us)" 'BEGIN {print (v != "?" && v < 1000) ? "met" : "NOT met"}')"
  echo
  echo "audit log: offline verification of the 1,000,000-entry export (goal < 20 s)"
  local e_s n_e n_b n_c
  e_s=$(awk '$1=="export_s" {print $2}' "$RES/audit-export.txt")
  n_e=$(awk '$1=="entries" {print $2}' "$RES/audit-export.txt")
  n_b=$(awk '$1=="bytes" {printf "%.0f", $2/1e6}' "$RES/audit-export.txt")
  n_c=$(awk '$1=="checkpoints" {print $2}' "$RES/audit-export.txt")
  echo "  writ audit export: $n_e entries, $n_b MB, $n_c older checkpoints, in $e_s s (over HTTP, writ serve on a copy)"
  local vs
  vs=$(cat "$RES"/audit-verify-*.time | sort -g | awk '{v[++n]=$0} END {print v[int((n+1)/2)]}')
  printf '  writ audit verify --export: %s s (median of %s; range %s-%s s), max RSS %s MB, user %s s, sys %s s\n' \
    "$(cut -d' ' -f1 <<<"$vs")" "$AUDIT_VERIFY_REPEAT" "$(cat "$RES"/audit-verify-*.time | sort -g | head -1 | cut -d' ' -f1)" \
    "$(cat "$RES"/audit-verify-*.time | sort -g | tail -1 | cut -d' ' -f1)" "$(awk '{printf "%.0f", $2/1024}' <<<"$vs")" "$(cut -d' ' -f3 <<<"$vs")" "$(cut -d' ' -f4 <<<"$vs")"
  printf '  peer: in-memory auditlog.Verify of 1,000,000 entries: %s s (the rest of the CLI figure is reading and decoding the file)\n' \
    "$(m "$mem" Verify/entries=1000000 s/1M-entries)"
  printf '  goal < 20 s: %s\n' "$(awk -v v="$(cut -d' ' -f1 <<<"$vs")" 'BEGIN {print (v < 20) ? "met" : "NOT met"}')"
  echo
  audit_profile_summary "$RES/audit-cpu-all.top" "BenchmarkAuditAppendIntegrated/normal/c=64, $AUDIT_N events, fresh log"
  echo
  audit_profile_summary "$RES/audit-1m-cpu-all.top" "BenchmarkAuditCheckpointLatency/append-1m/rate=1000, ${WRIT_AUDIT_LOAD_SECONDS} s on the 1,000,000-entry log"
  echo
  audit_profile_summary "$RES/audit-proof-cpu-all.top" "BenchmarkAuditInclusionProof1M/http, $AUDIT_PROOFS proofs"
}

# audit_profile_summary FILE TITLE: cumulative CPU of the append + integrate
# path's parts, as a share of all samples.
audit_profile_summary() {
  local top=$1 item name re
  echo "audit log: where the time goes ($2; cumulative CPU, % of all samples)"
  for item in \
    "all samples|Total samples" \
    "store writer (one goroutine)|sqlstore\\.\\(\\*DB\\)\\.writer$" \
    "  appendEvent (marshal, INSERT)|sqlstore\\.\\(\\*wtx\\)\\.appendEvent$" \
    "    Event.Marshal|writ\\.\\(\\*Event\\)\\.Marshal$" \
    "  AppendLog, in the writer|sqlstore\\.\\(\\*DB\\)\\.AppendLog\\.func1$" \
    "    its SELECT MAX(seq) (queryRow)|sqlstore\\.\\(\\*wtx\\)\\.queryRow$" \
    "  BEGIN/SAVEPOINT/RELEASE/COMMIT|sqlstore\\.\\(\\*wtx\\)\\.execRaw" \
    "integrator (integrateBatch)|auditlog\\.\\(\\*Log\\)\\.integrateBatch$" \
    "  LogSize: SELECT MAX(seq), a reader|sqlstore\\.\\(\\*DB\\)\\.LogSize$" \
    "  Unsequenced|sqlstore\\.\\(\\*DB\\)\\.Unsequenced$" \
    "  ReadLogHashes|sqlstore\\.\\(\\*DB\\)\\.ReadLogHashes$" \
    "  LatestCheckpoint|sqlstore\\.\\(\\*DB\\)\\.LatestCheckpoint$" \
    "  tlog hashes of new entries|tlog\\.StoredHashesForRecordHash$" \
    "  tlog.TreeHash|tlog\\.TreeHash$" \
    "  signing the checkpoint|auditlog\\.Sign$" \
    "SQLite b-tree walk (sqlite3BtreeNext)|lib\\._sqlite3BtreeNext$" \
    "pread (page reads)|libc\\.Xpread$" \
    "HTTP handler (ServeHTTP)|httpapi\\.\\(\\*API\\)\\.ServeHTTP$" \
    "  auditInclusion|httpapi\\.\\(\\*API\\)\\.auditInclusion$" \
    "  Log.InclusionProof|auditlog\\.\\(\\*Log\\)\\.InclusionProof$" \
    "appending callers (load)|auditAppendAll\\.func1$" \
    "GC background marking|runtime\\.gcBgMarkWorker$"; do
    name=${item%%|*} re=${item#*|}
    if [ "$re" = "Total samples" ]; then
      printf '  %-38s %s\n' "$name" "$(grep -o 'Total samples = [^ ]*' "$top" | cut -d' ' -f4)"
    else
      printf '  %-38s %s\n' "$name" "$(RE="$re" awk '$6 ~ ENVIRON["RE"] {print $4" "$5; f=1; exit} END {if (!f) print "below the cut-off"}' "$top")"
    fi
  done
}

# ---- k. policy decisions -----------------------------------------------------
# Defined before the other steps so that ONLY=policy runs it alone.

OPA_VERSION=v1.22.3
POLICY_RATES=${POLICY_RATES:-"250 1000"}
POLICY_C=${POLICY_C:-"16 64"}
POLICY_SECONDS=${POLICY_SECONDS:-10}
POLICY_COUNT=${POLICY_COUNT:-3}
POLICY_PROFILE_C=${POLICY_PROFILE_C:-16}

# opa_dir prints the directory holding the opa binary: OPA_BIN, or the tool
# cache, where it is built once (outside the clone, never per run).
opa_dir() {
  if [ -n "${OPA_BIN:-}" ]; then
    [ -x "$OPA_BIN/opa" ] || { echo "OPA_BIN=$OPA_BIN holds no executable opa" >&2; return 1; }
    echo "$OPA_BIN"
    return 0
  fi
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/writ-bench/bin
  if ! "$cache/opa" version 2>/dev/null | grep -qx "Version: ${OPA_VERSION#v}"; then
    echo "building opa $OPA_VERSION into $cache (about 1 minute, once; log in $RES/opa-build.log)" >&2
    mkdir -p "$cache"
    if ! (cd "${TMPDIR:-/tmp}" && GOBIN=$cache go install "github.com/open-policy-agent/opa@$OPA_VERSION") >"$RES/opa-build.log" 2>&1; then
      echo "building opa failed; see $RES/opa-build.log" >&2
      return 1
    fi
  fi
  echo "$cache"
}

# pprof_seconds PROF FOCUS [IGNORE]: the CPU seconds of the samples of PROF
# with a frame matching FOCUS and none matching IGNORE; FOCUS may be A&&B
# (a frame matching A and one matching B). Shares by frames in the stack
# stay right although Go cuts CPU-profile stacks at 64 frames, which hides
# the callers of OPA's deeply recursive evaluator (its samples are missing
# from the cumulative time of Decide and of everything above it).
pprof_seconds() {
  local prof=$1 focus=$2 ignore=${3:-} tmp
  tmp=$(mktemp "$WORK/pprof-XXXXXX")
  cp "$prof" "$tmp"
  while [[ "$focus" == *"&&"* ]]; do
    go tool pprof -proto -focus="${focus%%&&*}" "$OUT/policybench" "$tmp" >"$tmp.next" 2>/dev/null && mv "$tmp.next" "$tmp"
    focus=${focus#*&&}
  done
  go tool pprof -top -unit=ms -nodecount=1000000 -nodefraction=0 -edgefraction=0 -focus="$focus" ${ignore:+-ignore="$ignore"} "$OUT/policybench" "$tmp" 2>/dev/null |
    awk '/^Showing nodes accounting for/ {v=$5; sub(/ms,?$/, "", v); printf "%.2f\n", v/1000; f=1} END {if (!f) print 0}'
  rm -f "$tmp" "$tmp.next"
}

# pprof_table PROF N TITLE ITEMS...: one line per "name;focus;ignore" item:
# its CPU seconds, its share of all samples and its microseconds per
# decision (N decisions).
pprof_table() {
  local prof=$1 n=$2 item name f i sec total
  echo "$3"
  shift 3
  total=$(pprof_seconds "$prof" .)
  for item in "$@"; do
    IFS=';' read -r name f i <<<"$item"
    sec=$(pprof_seconds "$prof" "$f" "$i")
    printf '  %-54s %7ss %6s%% %6s us\n' "$name" "$sec" "$(awk -v a="$sec" -v b="$total" 'BEGIN {if (b > 0) printf "%.1f", a/b*100; else print "?"}')" \
      "$(awk -v s="$sec" -v n="$n" 'BEGIN {if (n > 0) printf "%.0f", s/n*1e6; else print "?"}')"
  done
}

PREPOLICY_COMMIT=b2e2283

# idle_rss BIN LABEL: `BIN serve --dev`, 3 s after it wrote dev.env: a line
# "LABEL VmRSS_kB VmHWM_kB heap_inuse_MB binary_MB" in policy-idle.txt.
idle_rss() {
  local dir=$WORK/idle-$2 url
  "$1" serve --dev --dev-dir "$dir" --listen 127.0.0.1:0 >"$WORK/idle-$2.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    [ -f "$dir/dev.env" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/idle-$2.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -f "$dir/dev.env" ] || { echo "writ serve did not write $dir/dev.env" >&2; exit 1; }
  url=$(sed -n 's/^WRIT_URL=//p' "$dir/dev.env")
  sleep 3
  printf '%s %s %s %s %s\n' "$2" "$(awk '$1 == "VmRSS:" {print $2}' "/proc/$SERVER_PID/status")" "$(awk '$1 == "VmHWM:" {print $2}' "/proc/$SERVER_PID/status")" \
    "$(curl -fsS "$url/metrics" | awk '/^go_memstats_heap_inuse_bytes/ {printf "%.1f", $2/1048576}')" "$(stat -c %s "$1" | awk '{printf "%.1f", $1/1048576}')" >>"$RES/policy-idle.txt"
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

policy_step() {
  step "k. policy decisions: Bundle.Eval and Point.Decide in process; /v1/decide beside opa run --server; memory"
  local opa
  opa=$(opa_dir)/opa
  cut -d' ' -f1-3 /proc/loadavg >"$RES/policy-load-before.txt"
  echo "k1. in process: go test -bench ./policy/ ./decision/ (-count $POLICY_COUNT)" >&2
  go test -run='^$' -bench=. -benchmem -count="$POLICY_COUNT" ./policy/ | tee "$RES/policy-eval.txt" >&2
  go test -run='^$' -bench=. -benchmem -count="$POLICY_COUNT" ./decision/ | tee "$RES/policy-decide.txt" >&2

  echo "k2. memory: the default bundle in a process (bench/policy -mem); writ serve --dev idle, with and without the policy engine" >&2
  go build -o "$OUT/writ" ./cmd/writ
  (cd bench && go build -o "$OUT/policybench" ./policy)
  "$OUT/policybench" -mem >"$RES/policy-mem.jsonl"
  # The peer: writ at $PREPOLICY_COMMIT, the last commit before the policy
  # engine (no OPA linked, no bundle), built once from `git archive`.
  local pre=$OUT/writ-$PREPOLICY_COMMIT
  if [ ! -x "$pre" ]; then
    rm -rf "$WORK/prepolicy" && mkdir -p "$WORK/prepolicy"
    if git archive "$PREPOLICY_COMMIT" | tar -x -C "$WORK/prepolicy" && (cd "$WORK/prepolicy" && go build -o "$pre" ./cmd/writ); then
      echo "built writ $PREPOLICY_COMMIT (before the policy engine) into $pre" >&2
    else
      echo "could not build writ $PREPOLICY_COMMIT; the idle memory is measured without its peer" >&2
      pre=""
    fi
  fi
  : >"$RES/policy-idle.txt"
  idle_rss "$OUT/writ" head
  [ -n "$pre" ] && idle_rss "$pre" "$PREPOLICY_COMMIT"
  cat "$RES/policy-idle.txt" >&2

  echo "k3. POST /v1/decide beside opa run --server: ${POLICY_RATES// /, }/s fixed, c = ${POLICY_C// /, } saturated, $POLICY_SECONDS s each; profiles at c=$POLICY_PROFILE_C" >&2
  "$OUT/policybench" -opa "$opa" -work "$WORK/policy" -rates "${POLICY_RATES// /,}" -c "${POLICY_C// /,}" -seconds "$POLICY_SECONDS" \
    -profile-c "$POLICY_PROFILE_C" -cpuprofile "$RES/policy-writ-cpu.prof" -opa-cpuprofile "$RES/policy-opa-cpu.prof" | tee "$RES/policy-http.jsonl" >&2
  go tool pprof -top -cum -nodecount=80 "$OUT/policybench" "$RES/policy-writ-cpu.prof" >"$RES/policy-writ-cpu.top" 2>/dev/null
  go tool pprof -top -cum -nodecount=80 "$RES/policy-opa-cpu.prof" >"$RES/policy-opa-cpu.top" 2>/dev/null
  cut -d' ' -f1-3 /proc/loadavg >"$RES/policy-load-after.txt"
}

policy_summary() {
  local ev=$RES/policy-eval.txt de=$RES/policy-decide.txt js=$RES/policy-http.jsonl mem=$RES/policy-mem.jsonl
  m() { median_of "$1" "Benchmark$2" "$3"; }
  rat() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "?" && b != "?" && b > 0) printf "%.2f", a/b; else print "?"}'; }
  us() { awk -v v="$1" 'BEGIN {if (v == "?") print "?"; else printf "%.1f", v/1e3}'; }
  echo "policy: one decision in process, one at a time (go test -bench; goal p99 < 250 us with a 100-action history)"
  printf '  %-54s %9s %8s %8s %8s %9s %9s\n' "" us/op p50_us p90_us p99_us allocs/op B/op
  local b name file label
  for b in "Evaluate/history=100;$ev;Bundle.Eval, history=100 ($(m "$ev" Evaluate/history=100 input-bytes) B input)" \
    "Evaluate/history=0;$ev;Bundle.Eval, history=0 ($(m "$ev" Evaluate/history=0 input-bytes) B input)" \
    "EvaluateParseInput;$ev;  its first step: input JSON -> OPA AST, history=100" \
    "Decide;$de;Point.Decide, history=100, durable write (SQLite)"; do
    IFS=';' read -r name file label <<<"$b"
    printf '  %-54s %9s %8s %8s %8s %9s %9s\n' "$label" "$(us "$(m "$file" "$name" ns/op)")" \
      "$(m "$file" "$name" p50-us)" "$(m "$file" "$name" p90-us)" "$(m "$file" "$name" p99-us)" "$(m "$file" "$name" allocs/op)" "$(m "$file" "$name" B/op)"
  done
  printf '  on every core: Bundle.Eval %s evals/s (%s goroutines); Point.Decide %s decisions/s (%s goroutines, a run each)\n' \
    "$(awk -v v="$(m "$ev" EvaluateParallel evals/s)" 'BEGIN {printf "%.0f", v}')" "$(nproc)" \
    "$(awk -v v="$(m "$de" DecideParallel decisions/s)" 'BEGIN {printf "%.0f", v}')" "$((4 * $(nproc)))"
  printf '  goal p99 < 250 us: Bundle.Eval %s, Point.Decide %s\n' \
    "$(awk -v v="$(m "$ev" Evaluate/history=100 p99-us)" 'BEGIN {print (v != "?" && v < 250) ? "met" : "NOT met"}')" \
    "$(awk -v v="$(m "$de" Decide p99-us)" 'BEGIN {print (v != "?" && v < 250) ? "met" : "NOT met"}')"
  echo
  echo "policy: POST /v1/decide (writ) beside POST /v1/data/writ/result (opa run --server): same bundle, config and input, one load generator, one machine"
  jq -r 'select(.kind=="setup") | "  opa \(.opa_version); input \(.input_bytes) B with \(.history) history actions (opa request body \(.opa_body_bytes) B, writ \(.writ_body_bytes) B)\n  writ: \(.runs) runs, one per worker; \(.auth)"' "$js"
  printf '  %-6s %-16s %11s %9s %9s %10s %9s %9s %6s %10s %10s %8s %8s\n' target load decisions/s p50_us p90_us p99_us mean_us svc_p50 errors srv_cpu_us cli_cpu_us p50_w/o thru_w/o
  local t l ps p50 p90 p99 mean svc e sc cc w_ps=0 w_p50=0
  while IFS=$'\t' read -r t l ps p50 p90 p99 mean svc e sc cc; do
    if [ "$t" = writ ]; then
      w_ps=$ps w_p50=$p50
      printf '  %-6s %-16s %11s %9s %9s %10s %9s %9s %6s %10s %10s\n' "$t" "$l" "$ps" "$p50" "$p90" "$p99" "$mean" "$svc" "$e" "$sc" "$cc"
    else
      printf '  %-6s %-16s %11s %9s %9s %10s %9s %9s %6s %10s %10s %8s %8s\n' "$t" "$l" "$ps" "$p50" "$p90" "$p99" "$mean" "$svc" "$e" "$sc" "$cc" "$(rat "$w_p50" "$p50")" "$(rat "$w_ps" "$ps")"
    fi
  done < <(jq -r 'select(.kind=="step") | [.target, (if .mode=="rate" then "\(.rate)/s fixed" elif .mode=="saturation" then "c=\(.c)" else "c=\(.c) profiled" end),
    (.per_s|round), (.p50_us|round), (.p90_us|round), (.p99_us|round), (.mean_us|round), (if .mode=="rate" then (.svc_p50_us|round) else "-" end),
    .errors, (.server_cpu_us|round), (.client_cpu_us|round)] | @tsv' "$js")
  echo "  (fixed: open loop, latency from each request's scheduled start, so it includes the generator's timer lateness (Go timers"
  echo "   overshoot up to ~1 ms here); svc_p50: from the actual send; c=N: N closed-loop clients; p50_w/o: writ's p50 / opa's;"
  echo "   thru_w/o: writ's decisions/s / opa's; srv_cpu_us: the server process's CPU per decision; cli_cpu_us: the load generator's)"
  jq -rs '[.[] | select(.kind=="step" and .mode=="rate")] | group_by(.rate)[] | (.[] | select(.target=="writ")) as $w | (.[] | select(.target=="opa")) as $o |
    "  goal writ p50 <= 1.5x opa p50 at \($w.rate)/s: \(if $w.p50_us <= 1.5*$o.p50_us then "met" else "NOT met" end) (x\($w.p50_us/$o.p50_us*100|round/100); from the send: x\($w.svc_p50_us/$o.svc_p50_us*100|round/100))"' "$js"
  jq -rs '[.[] | select(.kind=="step" and .mode=="saturation")] | group_by(.c)[] | (.[] | select(.target=="writ")) as $w | (.[] | select(.target=="opa")) as $o |
    "  goal writ p50 <= 1.5x opa p50 at c=\($w.c): \(if $w.p50_us <= 1.5*$o.p50_us then "met" else "NOT met" end) (x\($w.p50_us/$o.p50_us*100|round/100); mean x\($w.mean_us/$o.mean_us*100|round/100))"' "$js"
  jq -rs '[.[] | select(.kind=="step" and .target=="writ" and .mode=="saturation")] | max_by(.per_s) |
    "  goal >= 5,000 decisions/s on 2 cores: \(if .per_s >= 5000 then "met" else "NOT met" end) (writ best: \(.per_s|round)/s at c=\(.c), \(.errors) errors)"' "$js"
  echo
  echo "policy: memory"
  jq -r '"  the default bundle in a process (server.LoadPolicy, after GC): Go heap in use +\(.heap_added_kb/1024*10|round/10) MB, RSS +\(.rss_added_kb/1024*10|round/10) MB (\(.rss_before_kb/1024*10|round/10) -> \(.rss_after_kb/1024*10|round/10) MB, peak \(.peak_rss_kb/1024*10|round/10) MB while loading)\n  the load allocates \(.allocated_during_load_kb/1024|round) MB in all (\(.load_seconds*100|round/100) s, \(.tests) bundle tests); a second bundle on top (a reload, both alive): heap +\(.heap_added_by_a_second_bundle_kb/1024*10|round/10) MB"' "$mem"
  awk -v pre="$PREPOLICY_COMMIT" '{rss[$1]=$2; hwm[$1]=$3; heap[$1]=$4; bin[$1]=$5}
    END {
      printf "  writ serve --dev, idle 3 s after start: VmRSS %.1f MB (peak %.1f), Go heap in use %s MB, binary %s MB\n", rss["head"]/1024, hwm["head"]/1024, heap["head"], bin["head"]
      if (pre in rss) {
        printf "  the same at %s, before the policy engine: VmRSS %.1f MB (peak %.1f), Go heap in use %s MB, binary %s MB\n", pre, rss[pre]/1024, hwm[pre]/1024, heap[pre], bin[pre]
        printf "  the policy engine (OPA linked and initialised, the bundle loaded) and everything else since %s: VmRSS +%.1f MB, heap +%.1f MB\n", pre, (rss["head"]-rss[pre])/1024, heap["head"]-heap[pre]
      }
    }' "$RES/policy-idle.txt"
  jq -r 'select(.kind=="setup") | "  before the load: writ (dev server, runs seeded) VmRSS \(.writ_rss_kb/1024*10|round/10) MB; opa run --server with the bundle \(.opa_rss_kb/1024*10|round/10) MB"' "$js"
  jq -rs '[.[] | select(.kind=="step")] | group_by(.target)[] | max_by(.hwm_kb) | "  peak under load: \(.target) VmHWM \(.hwm_kb/1024*10|round/10) MB"' "$js"
  printf '  goal: the default bundle adds < 60 MB to writ serve: %s\n' "$(awk -v pre="$PREPOLICY_COMMIT" -v b="$(jq -r '.rss_added_kb' "$mem")" \
    '{rss[$1]=$2} END {d = (pre in rss) ? rss["head"]-rss[pre] : b; print ((d < 61440 && b < 61440) ? "met" : "NOT met") " (+" sprintf("%.1f", ((pre in rss) ? d : b)/1024) " MB RSS)"}' "$RES/policy-idle.txt")"
  echo
  local n
  n=$(jq -rs '[.[] | select(.kind=="step" and .target=="writ" and .mode=="profile")][0] | .per_s * .seconds | round' "$js")
  pprof_table "$RES/policy-writ-cpu.prof" "$n" \
    "policy: where writ's time goes (its server process, c=$POLICY_PROFILE_C saturated, $n decisions; CPU of samples with such a frame; % of all; per decision)" \
    "all samples;.;" \
    "policy evaluation (OPA topdown, rego);opa/v1/(topdown|rego)\.;" \
    "input JSON -> OPA AST (ast.ValueFromReader);ast\.ValueFromReader;" \
    "  of it encoding/json decoding;ast\.ValueFromReader;ast\.InterfaceToValue" \
    "decision point: input, json.Marshal, SHA-256, events;decision\.\(\*Point\)\.Decide;opa/v1|policy\.|sqlstore\." \
    "  of it json.Marshal of the input;decision\.\(\*Point\)\.Decide\$&&encoding/json\.Marshal\$;Point\)\.events|sqlstore\." \
    "store, request side (RecordDecision, reads);sqlstore\.;sqlstore\.\(\*DB\)\.writer" \
    "store writer (one goroutine: INSERTs, COMMIT);sqlstore\.\(\*DB\)\.writer;" \
    "  of it SQLite's commit (vdbeCommit: WAL frames);sqlstore\.\(\*DB\)\.writer&&lib\._vdbeCommit\$;" \
    "audit log integrator;auditlog\.;" \
    "authentication (run bearer token, cached);httpapi\.\(\*API\)\.authenticateRun;" \
    "HTTP, routing, request body, response, metrics;net/http|httpapi;decision\.|opa/v1|policy\.|sqlstore\.|authenticateRun" \
    "GC background marking;runtime\.gcBgMarkWorker;" \
    "allocation (mallocgc), inside the rows above;runtime\.mallocgc$;"
  n=$(jq -rs '[.[] | select(.kind=="step" and .target=="opa" and .mode=="profile")][0] | .per_s * .seconds | round' "$js")
  pprof_table "$RES/policy-opa-cpu.prof" "$n" \
    "policy: where opa's time goes (opa run --server, c=$POLICY_PROFILE_C saturated, $n decisions; its /debug/pprof/profile)" \
    "all samples;.;" \
    "policy evaluation (topdown, rego);opa/v1/(topdown|rego)\.;" \
    "input JSON -> AST (readInputPostV1);server\.readInputPostV1;" \
    "HTTP and the rest of the handler;net/http;readInputPostV1|opa/v1/(topdown|rego)\." \
    "GC background marking;runtime\.gcBgMarkWorker;" \
    "allocation (mallocgc), inside the rows above;runtime\.mallocgc$;"
  printf '  load average (1, 5, 15 min) before step k: %s; after: %s\n' "$(cat "$RES/policy-load-before.txt")" "$(cat "$RES/policy-load-after.txt")"
}

# ---- l. hook adapters ----------------------------------------------------------
# Defined before the other steps so that ONLY=hook runs it alone.

HOOK_N=${HOOK_N:-300}
HOOK_COUNT=${HOOK_COUNT:-3}

hook_step() {
  step "l. hook adapters: writ hook claude-code per process, beside POST /v1/decide, curl and process start"
  go build -o "$OUT/writ" ./cmd/writ
  cut -d' ' -f1-3 /proc/loadavg >"$RES/hook-load-before.txt"
  WRIT_TEST_WRIT_BIN=$OUT/writ go test -run='^$' -bench=HookProcess -benchtime="${HOOK_N}x" -count="$HOOK_COUNT" ./cmd/writ |
    tee "$RES/hook.txt" >&2
  GODEBUG=inittrace=1 "$OUT/writ" version 2>"$RES/hook-inittrace.txt" >/dev/null
  cut -d' ' -f1-3 /proc/loadavg >"$RES/hook-load-after.txt"
}

hook_summary() {
  local f=$RES/hook.txt c
  hk() { median_of "$f" "BenchmarkHookProcess/$1" "$2"; }
  hk_sub() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "?" && b != "?") printf "%.2f", a-b; else print "?"}'; }
  echo "hook adapters: one process per tool call, as Claude Code runs it (go test -bench HookProcess ./cmd/writ; $HOOK_N calls per case, median of $HOOK_COUNT)"
  printf '  %-24s %8s %8s %11s\n' case p50_ms p99_ms cpu_p50_ms
  for c in pre pre-dpop post pre-writ-down decide-http-new-conn decide-http-keepalive decide-curl writ-version go-hello true; do
    printf '  %-24s %8s %8s %11s\n' "$c" "$(hk "$c" p50-ms)" "$(hk "$c" p99-ms)" "$(hk "$c" cpu-p50-ms | sed 's/^?$/-/')"
  done
  echo "  (cpu_p50_ms: user + system CPU of the process, its threads together; - for the requests made in process)"
  printf '  the decision, pre - pre-writ-down: %s ms p50 (POST /v1/decide alone, new connection: %s ms)\n' \
    "$(hk_sub "$(hk pre p50-ms)" "$(hk pre-writ-down p50-ms)")" "$(hk decide-http-new-conn p50-ms)"
  printf '  the writ binary over a minimal Go program, writ-version - go-hello: %s ms p50\n' \
    "$(hk_sub "$(hk writ-version p50-ms)" "$(hk go-hello p50-ms)")"
  printf '  goal p50 < 15 ms for pre: %s\n' "$(awk -v a="$(hk pre p50-ms)" 'BEGIN {print (a != "?" && a < 15) ? "met" : "NOT met"}')"
  awk '$1 == "init" {ms += $5; n++; if ($2 == "main") at = $3}
    END {printf "  package init of writ version (GODEBUG=inittrace=1, one run): %.2f ms of clock in %d packages; main.init at %s ms\n", ms, n, substr(at, 2)}' \
    "$RES/hook-inittrace.txt"
  awk '$1 == "init" {print $5, $2}' "$RES/hook-inittrace.txt" | sort -rn | head -6 |
    awk '{printf "    %6.2f ms  %s\n", $1, $2}'
  printf '  load average (1, 5, 15 min) before step l: %s; after: %s\n' "$(cat "$RES/hook-load-before.txt")" "$(cat "$RES/hook-load-after.txt")"
}

if [ "${ONLY:-}" = hook ]; then
  hook_step
  {
    echo
    echo "== summary (ONLY=hook)"
    cat "$RES/machine.txt"
    echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
    echo
    hook_summary
    echo
    echo "raw results in $RES"
  } | tee "$RES/summary.txt"
  exit 0
fi

if [ "${ONLY:-}" = policy ]; then
  policy_step
  {
    echo
    echo "== summary (ONLY=policy)"
    cat "$RES/machine.txt"
    echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
    echo
    policy_summary
    echo
    echo "raw results in $RES"
  } | tee "$RES/summary.txt"
  exit 0
fi

if [ "${ONLY:-}" = audit ]; then
  audit_step
  {
    echo
    echo "== summary (ONLY=audit)"
    cat "$RES/machine.txt"
    echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
    echo
    audit_summary
    echo
    echo "raw results in $RES"
  } | tee "$RES/summary.txt"
  exit 0
fi

if [ "${ONLY:-}" = identity ]; then
  identity_step
  {
    echo
    echo "== summary (ONLY=identity)"
    cat "$RES/machine.txt"
    echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run)"
    echo
    identity_summary
    echo
    echo "raw results in $RES"
  } | tee "$RES/summary.txt"
  exit 0
fi

step "build"
go build -o "$OUT/writ" ./cmd/writ
(cd bench && go build -o "$OUT/runstart" ./runstart)
echo "built $OUT/writ and $OUT/runstart" >&2

# start_writ NAME: a fresh `writ serve --dev` in $WORK/NAME, on a free port;
# sets SERVER_PID, WRIT_URL and WRIT_DEV_KEY.
start_writ() {
  local dir=$WORK/$1
  "$OUT/writ" serve --dev --dev-dir "$dir" --listen 127.0.0.1:0 >"$WORK/$1.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    [ -f "$dir/dev.env" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/$1.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -f "$dir/dev.env" ] || { echo "writ serve did not write $dir/dev.env" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$dir/dev.env"
  echo "writ serve pid $SERVER_PID at $WRIT_URL (data in $dir)" >&2
}
stop_writ() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
rss_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
active_runs() { curl -fsS "$WRIT_URL/metrics" | awk '/^writ_runs\{state="active"\}/ {print $2}'; }
runstart() { "$OUT/runstart" -key "$WRIT_DEV_KEY" "$@"; }

step "a+b. memory: idle, then with 1,000 active runs"
start_writ mem
sleep 2
IDLE_RSS=$(rss_kb "$SERVER_PID" VmRSS)
echo "idle VmRSS ${IDLE_RSS} kB" >&2
runstart -url "$WRIT_URL" -n 1000 -c 4 -warmup 0 -pid "$SERVER_PID" -label mem-1000 >>"$RES/runstart.jsonl"
sleep 1
RSS_1000=$(rss_kb "$SERVER_PID" VmRSS)
HWM_1000=$(rss_kb "$SERVER_PID" VmHWM)
ACTIVE_1000=$(active_runs)
echo "VmRSS ${RSS_1000} kB (peak ${HWM_1000} kB) with ${ACTIVE_1000} active runs" >&2
stop_writ

step "c+d. run start over HTTP: writ and the floor, $N runs per step, a fresh writ per step, $REPEAT times"
for rep in $(seq "$REPEAT"); do
  for c in $CONCURRENCY; do
    start_writ "c$c-$rep"
    runstart -url "$WRIT_URL" -n "$N" -c "$c" -pid "$SERVER_PID" -label writ >>"$RES/runstart.jsonl"
    stop_writ
    runstart -peer -n "$N" -c "$c" -label floor >>"$RES/runstart.jsonl"
  done
done

step "e. run start as active runs accumulate: $ROUNDS rounds of $N at c=16 on one writ, then $N at c=1"
start_writ scale
: >"$RES/scale.tsv"
for r in $(seq "$ROUNDS"); do
  a=$(active_runs)
  runstart -url "$WRIT_URL" -n "$N" -c 16 -pid "$SERVER_PID" -label "scale-$r" | tee -a "$RES/runstart.jsonl" |
    jq -r --arg a "$a" '[$a, .c, (.runs_per_s|round), .p50_ms, .p99_ms, (.server_cpu_us_per_run|round)] | @tsv' >>"$RES/scale.tsv"
done
a=$(active_runs)
runstart -url "$WRIT_URL" -n "$N" -c 1 -pid "$SERVER_PID" -label "scale-c1" | tee -a "$RES/runstart.jsonl" |
  jq -r --arg a "$a" '[$a, .c, (.runs_per_s|round), .p50_ms, .p99_ms, (.server_cpu_us_per_run|round)] | @tsv' >>"$RES/scale.tsv"
FINAL_RSS=$(rss_kb "$SERVER_PID" VmRSS)
FINAL_HWM=$(rss_kb "$SERVER_PID" VmHWM)
FINAL_ACTIVE=$(active_runs)
echo "VmRSS ${FINAL_RSS} kB (peak ${FINAL_HWM} kB) with ${FINAL_ACTIVE} active runs" >&2
stop_writ

step "f. trigger verification (go test -bench=Verify ./trigger/)"
go test -run='^$' -bench=Verify -benchmem ./trigger/ | tee "$RES/verify.txt" >&2

step "f. SSH: ssh-keygen -Y verify vs writ trigger verify, one process per verification"
SSH_LOOPS=${SSH_LOOPS:-50}
S=$WORK/ssh
mkdir -p "$S"
ssh-keygen -q -t ed25519 -N '' -C dev -f "$S/id" >/dev/null
printf 'dev namespaces="writ-trigger" %s\n' "$(cat "$S/id.pub")" >"$S/allowed_signers"
"$OUT/writ" trigger new --issuer dev >"$S/t.json"
ssh-keygen -q -Y sign -n writ-trigger -f "$S/id" "$S/t.json" >/dev/null 2>&1
"$OUT/writ" trigger sign --ssh-sig "$S/t.json.sig" "$S/t.json" >"$S/t.signed.json"
sshkeygen_verify() { ssh-keygen -Y verify -f "$S/allowed_signers" -I dev -n writ-trigger -s "$S/t.json.sig" <"$S/t.json"; }
writ_verify() { "$OUT/writ" trigger verify --pubkey-file "$S/id.pub" --signer dev "$S/t.signed.json"; }
# Both must succeed before they are timed.
sshkeygen_verify >/dev/null 2>&1 || { echo "ssh-keygen -Y verify failed" >&2; exit 1; }
writ_verify >/dev/null || { echo "writ trigger verify failed" >&2; exit 1; }
per_process_ms() { # function → mean ms per call over SSH_LOOPS calls (after 5 warm-up calls)
  local t0 t1
  for _ in 1 2 3 4 5; do "$1" >/dev/null 2>&1; done
  t0=$(date +%s%N)
  for _ in $(seq "$SSH_LOOPS"); do "$1" >/dev/null 2>&1; done
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" -v n="$SSH_LOOPS" 'BEGIN {printf "%.2f", (b-a)/n/1e6}'
}
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 5 --runs "$SSH_LOOPS" --export-json "$RES/ssh-hyperfine.json" \
    -n ssh-keygen "ssh-keygen -Y verify -f $S/allowed_signers -I dev -n writ-trigger -s $S/t.json.sig < $S/t.json" \
    -n writ "$OUT/writ trigger verify --pubkey-file $S/id.pub --signer dev $S/t.signed.json" >&2
  SSHKEYGEN_MS=$(jq -r '.results[0].mean*1000 | . * 100 | round / 100' "$RES/ssh-hyperfine.json")
  WRITVERIFY_MS=$(jq -r '.results[1].mean*1000 | . * 100 | round / 100' "$RES/ssh-hyperfine.json")
  TIMER="hyperfine, $SSH_LOOPS runs"
else
  SSHKEYGEN_MS=$(per_process_ms sshkeygen_verify)
  WRITVERIFY_MS=$(per_process_ms writ_verify)
  TIMER="mean of a loop of $SSH_LOOPS timed with date +%s%N"
fi
printf 'ssh-keygen -Y verify %s ms/process, writ trigger verify %s ms/process (%s)\n' "$SSHKEYGEN_MS" "$WRITVERIFY_MS" "$TIMER" | tee "$RES/ssh-process.txt" >&2

step "g. in-process benchmarks: server (HTTP) and sqlstore (group commit, durability)"
go test -run='^$' -bench=RunStartHTTP -benchmem ./server/ | tee "$RES/server.txt" >&2
go test -run='^$' -bench=CreateRun -benchmem ./sqlstore/ | tee "$RES/sqlstore.txt" >&2

step "h. where the time goes: CPU profile of BenchmarkRunStartHTTP (10,000 runs)"
go test -run='^$' -bench='RunStartHTTP$' -benchtime=10000x -cpuprofile "$RES/server-cpu.prof" -o "$OUT/server.test" ./server/ >&2
go tool pprof -top -cum -nodecount=60 "$OUT/server.test" "$RES/server-cpu.prof" >"$RES/server-cpu.top" 2>/dev/null
go tool pprof -top -cum -nodecount=3000 "$OUT/server.test" "$RES/server-cpu.prof" >"$RES/server-cpu-all.top" 2>/dev/null
cum_of() { # cumulative CPU of the first function matching regexp $1
  RE="$1" awk '$6 ~ ENVIRON["RE"] {print $4" "$5; f=1; exit} END {if (!f) print "below pprof'"'"'s cut-off (see its \"Dropped\" line)"}' "$RES/server-cpu-all.top"
}

identity_step

audit_step

policy_step

hook_step

# ---- summary ----------------------------------------------------------------
ns_of() { awk -v b="$1" '$1 ~ "^"b"(-[0-9]+)?$" {for (i=2;i<=NF;i++) if ($(i+1)=="ns/op") {print $i; exit}}' "$RES/verify.txt"; }
per_s() { awk -v ns="$1" 'BEGIN {if (ns > 0) printf "%.0f", 1e9/ns; else print "?"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "?"}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

{
  echo
  echo "== summary"
  cat "$RES/machine.txt"
  echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (after the run; the run itself keeps about 1.5 cores busy)"
  echo
  echo "memory of writ serve (VmRSS)"
  printf '  %-34s %8s MB   goal < 150 MB\n' "idle" "$(mb "$IDLE_RSS")"
  printf '  %-34s %8s MB   goal < 300 MB (peak %s MB)\n' "with $ACTIVE_1000 active runs" "$(mb "$RSS_1000")" "$(mb "$HWM_1000")"
  printf '  %-34s %8s MB   (peak %s MB, after step e)\n' "with $FINAL_ACTIVE active runs" "$(mb "$FINAL_RSS")" "$(mb "$FINAL_HWM")"
  echo
  echo "run start over HTTP, $N pre-signed unique triggers per row, median of $REPEAT (goal >= 1,500 runs/s on 2 cores)"
  printf '  %-6s %3s %9s %13s %8s %8s %8s %6s %11s %11s %11s\n' target c runs/s range p50_ms p90_ms p99_ms errors srv_cpu_us cli_cpu_us writ/floor
  for c in $CONCURRENCY; do
    for l in writ floor; do
      row=$(jq -sc --arg l "$l" --argjson c "$c" '[.[] | select(.label==$l and .c==$c)] | sort_by(.runs_per_s)
        | .[length/2|floor] + {lo: (.[0].runs_per_s|round), hi: (.[-1].runs_per_s|round), errs: (map(.errors)|add)}' "$RES/runstart.jsonl")
      printf '  %-6s %3s %9.0f %13s %8.2f %8.2f %8.2f %6s %11.0f %11.0f' "$l" "$c" \
        "$(jq .runs_per_s <<<"$row")" "$(jq -r '"\(.lo)-\(.hi)"' <<<"$row")" "$(jq .p50_ms <<<"$row")" \
        "$(jq .p90_ms <<<"$row")" "$(jq .p99_ms <<<"$row")" "$(jq .errs <<<"$row")" \
        "$(jq .server_cpu_us_per_run <<<"$row")" "$(jq .client_cpu_us_per_run <<<"$row")"
      if [ "$l" = writ ]; then
        w_rps=$(jq .runs_per_s <<<"$row")
        printf '\n'
      else
        printf ' %11s\n' "1/$(ratio "$(jq .runs_per_s <<<"$row")" "$w_rps")"
      fi
    done
  done
  echo "  (each writ measurement on a fresh server; p50..cli_cpu_us are of the median repetition; errors summed;"
  echo "   writ/floor 1/X: writ starts runs X times slower than the floor; srv_cpu_us: server process CPU per run;"
  echo "   cli_cpu_us: the load generator's own CPU per run — it shares the 2 cores)"
  echo
  echo "run start as active runs accumulate (one writ, $N runs per row)"
  printf '  %14s %3s %9s %8s %8s %12s\n' active_before c runs/s p50_ms p99_ms srv_cpu_us
  while IFS=$'\t' read -r a c rps p50 p99 cpu; do
    printf '  %14s %3s %9s %8s %8s %12s\n' "$a" "$c" "$rps" "$p50" "$p99" "$cpu"
  done <"$RES/scale.tsv"
  echo
  echo "trigger verification, in process (go test -bench=Verify ./trigger/)"
  for pair in "VerifyDSSEEd25519 RawEd25519Verify" "VerifyDSSEECDSA RawECDSAVerify" "VerifySSH RawEd25519Verify"; do
    set -- $pair
    v=$(ns_of "Benchmark$1"); r=$(ns_of "Benchmark$2")
    printf '  %-20s %8s/s   raw %-18s %8s/s   overhead x%s\n' "$1" "$(per_s "$v")" "$2" "$(per_s "$r")" "$(ratio "$v" "$r")"
  done
  echo
  echo "SSH trigger, one process per verification"
  printf '  ssh-keygen -Y verify  %8s ms\n  writ trigger verify   %8s ms   ratio writ/ssh-keygen %s\n' \
    "$SSHKEYGEN_MS" "$WRITVERIFY_MS" "$(ratio "$WRITVERIFY_MS" "$SSHKEYGEN_MS")"
  echo
  echo "in-process benchmarks"
  grep -h '^Benchmark' "$RES/server.txt" "$RES/sqlstore.txt" | sed 's/^/  /'
  echo
  echo "where the time goes (BenchmarkRunStartHTTP, 10,000 runs; cumulative CPU, % of all samples; client and signing in the same process)"
  for item in \
    "all samples|Total samples" \
    "HTTP handler, whole request|^net/http\\.\\(\\*conn\\)\\.serve$" \
    "  startRun|httpapi\\.\\(\\*API\\)\\.startRun$" \
    "    trigger.Verify|^github.com/writ-dev/writ/trigger\\.Verify$" \
    "      Ed25519 verify|^crypto/ed25519\\.Verify$" \
    "      strict JSON decode|strictjson\\.Decode$" \
    "    response JSON|httpapi\\.writeJSON$" \
    "store writer (one goroutine)|sqlstore\\.\\(\\*DB\\)\\.writer$" \
    "  CreateRun statements|sqlstore\\.\\(\\*DB\\)\\.CreateRun\\.func1$" \
    "  BEGIN/SAVEPOINT/COMMIT|sqlstore\\.\\(\\*wtx\\)\\.execRaw$" \
    "  ExpireRuns (expiry loop)|sqlstore\\.\\(\\*DB\\)\\.ExpireRuns\\.func1$" \
    "NextDeadline (expiry loop)|sqlstore\\.\\(\\*DB\\)\\.NextDeadline$" \
    "client: posting goroutines only|BenchmarkRunStartHTTP\\.func1$" \
    "signing (setup, untimed)|signTriggers$" \
    "GC background marking|runtime\\.gcBgMarkWorker$"; do
    name=${item%%|*} re=${item#*|}
    if [ "$re" = "Total samples" ]; then
      printf '  %-34s %s\n' "$name" "$(grep -o 'Total samples = [^ ]*' "$RES/server-cpu-all.top" | cut -d' ' -f4)"
    else
      printf '  %-34s %s\n' "$name" "$(cum_of "$re")"
    fi
  done
  echo
  identity_summary
  echo
  audit_summary
  echo
  policy_summary
  echo
  hook_summary
  echo
  echo "raw results in $RES"
} | tee "$RES/summary.txt"
