#!/usr/bin/env bash
# bench/run.sh — writ's performance, each figure next to a peer, in one run
# (DESIGN.md §6). Results and the commands behind them: docs/performance.md.
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
#                            ../shared/TOOLS.md); otherwise "SPIRE: not measured".
# Raw output lands in bench/out/results/.
#
#   ONLY=identity bench/run.sh   # step i alone (about 35 s, 1 min 30 s with BENCH_COUNT=3; plus SPIRE)
#   BENCH_COUNT=3 ...            # step i: -count for go test (medians reported)
#   BENCHTIME=1s ...             # step i: -benchtime for go test
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
  # Outside the clone, once per machine (../shared/TOOLS.md): a scratch
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
go test -run='^$' -bench=. -benchmem ./sqlstore/ | tee "$RES/sqlstore.txt" >&2

step "h. where the time goes: CPU profile of BenchmarkRunStartHTTP (10,000 runs)"
go test -run='^$' -bench='RunStartHTTP$' -benchtime=10000x -cpuprofile "$RES/server-cpu.prof" -o "$OUT/server.test" ./server/ >&2
go tool pprof -top -cum -nodecount=60 "$OUT/server.test" "$RES/server-cpu.prof" >"$RES/server-cpu.top" 2>/dev/null
go tool pprof -top -cum -nodecount=3000 "$OUT/server.test" "$RES/server-cpu.prof" >"$RES/server-cpu-all.top" 2>/dev/null
cum_of() { # cumulative CPU of the first function matching regexp $1
  RE="$1" awk '$6 ~ ENVIRON["RE"] {print $4" "$5; f=1; exit} END {if (!f) print "below pprof'"'"'s cut-off (see its \"Dropped\" line)"}' "$RES/server-cpu-all.top"
}

identity_step

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
  echo "raw results in $RES"
} | tee "$RES/summary.txt"
