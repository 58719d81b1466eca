#!/usr/bin/env bash
# tools/bench/run_bench.sh — throughput/latency benchmark of our onebox against a "ceiling".
#
# For every workload x key distribution it drives, with the same Go load generator
# (tools/bench/loadgen), (a) our running onebox (BENCH_META, table BENCH_TABLE) and (b) the
# ceiling server tools/bench/ceiling.py (a minimal gevent + rocksdict get/put server, the upper
# bound of a Python/gevent/RocksDB server on this machine), then prints ops/s, ours/ceiling
# ratio and p50/p99/p99.9 latencies, plus an open-loop "half load" run (readonly/uniform at 50%
# of each target's measured peak). It WRITES BENCH_RECORDS records (hash keys user0..,
# empty sort key) into our table and removes them at the end (BENCH_CLEANUP): do not run it
# against a onebox that a test suite is using. Everything runs on 127.0.0.1; the ceiling
# server is started here and stopped by its PID.
# Results: .build/bench/results/<timestamp>/results.jsonl.
#
# Environment (defaults):
#   BENCH_SECONDS=15        measured seconds per run (1..600)
#   BENCH_WARMUP=2          unmeasured warm-up seconds before each run
#   BENCH_THREADS=64        closed-loop workers (64 saturates the ceiling on the 2-core dev box)
#   BENCH_HALF_THREADS=64   worker pool of the open-loop half-load run
#   BENCH_RECORDS=100000    records pre-loaded into each target (hash keys user0..)
#   BENCH_VALUE=1024        value size, bytes
#   BENCH_META=127.0.0.1:34601   our meta server(s), comma separated
#   BENCH_TABLE=temp        our table (must exist; the ceiling serves any name)
#   BENCH_CEILING_PORT=34701
#   BENCH_TARGETS="ours ceiling"    BENCH_HALF_TARGETS="ours ceiling"
#   BENCH_WORKLOADS="readonly writeonly rw11 rw30to1"   BENCH_DISTS="uniform zipfian"
#   BENCH_OURS_PIDS=        our server PIDs for the CPU columns (default: pgrep of pegasus_server)
#   BENCH_RETRIES=2         re-runs of a measurement during which other processes used more
#   BENCH_MAX_OTHER=20      than BENCH_MAX_OTHER % CPU (a shared machine); the last try is kept
#   BENCH_CLEANUP=1         remove the pre-loaded records from our table afterwards (0 = keep)
#   BENCH_CLIENT=official   official = the Apache go-client, fetched through the Go module proxy
#                           at build time (BENCH_GOCLIENT_VERSION; the proxy serves the 2022
#                           pseudo-version, not the newer ones); wire = loadgen's built-in THFT
#                           client (stdlib only), cheaper per operation, for comparison
# Exit status: 0, or 1 when a requested target could not be loaded/driven.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$ROOT/.build/bench

SECS=${BENCH_SECONDS:-15}
WARMUP=${BENCH_WARMUP:-2}
THREADS=${BENCH_THREADS:-64}
HALF_THREADS=${BENCH_HALF_THREADS:-64}
RECORDS=${BENCH_RECORDS:-100000}
VALUE=${BENCH_VALUE:-1024}
META=${BENCH_META:-127.0.0.1:34601}
TABLE=${BENCH_TABLE:-temp}
CPORT=${BENCH_CEILING_PORT:-34701}
TARGETS=${BENCH_TARGETS:-ours ceiling}
HALF_TARGETS=${BENCH_HALF_TARGETS:-ours ceiling}
WORKLOADS=${BENCH_WORKLOADS:-readonly writeonly rw11 rw30to1}
DISTS=${BENCH_DISTS:-uniform zipfian}
CLIENT=${BENCH_CLIENT:-official}
CLEANUP=${BENCH_CLEANUP:-1}
RETRIES=${BENCH_RETRIES:-2}
MAX_OTHER=${BENCH_MAX_OTHER:-20}
GOCLIENT_VERSION=${BENCH_GOCLIENT_VERSION:-v0.0.0-20220526071020-be5634371701}

die() { echo "run_bench: $*" >&2; exit 2; }
say() { echo "run_bench: $*" >&2; }
for v in SECS WARMUP THREADS HALF_THREADS RECORDS VALUE CPORT RETRIES MAX_OTHER; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( SECS >= 1 && SECS <= 600 )) || die "BENCH_SECONDS must be 1..600"
(( WARMUP <= 60 )) || die "BENCH_WARMUP must be <= 60"
(( THREADS >= 1 && THREADS <= 4096 && HALF_THREADS >= 1 && HALF_THREADS <= 4096 )) || die "bad thread count"
(( RECORDS >= 1 )) || die "BENCH_RECORDS must be >= 1"
(( RETRIES <= 5 )) || die "BENCH_RETRIES must be <= 5"
[[ $CLIENT == wire || $CLIENT == official ]] || die "BENCH_CLIENT must be wire or official"
command -v go >/dev/null || die "go is not installed"

PY=$ROOT/.venv/bin/python
[[ -x $PY ]] || PY=$(command -v python3)

RUN=$BUILD/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
RESULTS=$RUN/results.jsonl
: >"$RESULTS"
RUN_TIMEOUT=$((SECS + WARMUP + 60))   # hard bound of one measured run
LOAD_TIMEOUT=600                      # hard bound of one pre-load

# ---- build the load generator (cached by source hash) ------------------------------------
build_loadgen() {
    local src=$HERE/loadgen hash
    hash=$( (cat "$src/go.mod" "$src"/*.go; echo "$CLIENT $GOCLIENT_VERSION"; go version) | sha256sum | cut -c1-16)
    BIN=$BUILD/loadgen-$CLIENT-$hash
    [[ -x $BIN ]] && return 0
    say "building loadgen ($CLIENT) -> $BIN"
    mkdir -p "$BUILD"
    if [[ $CLIENT == official ]]; then
        # A scratch copy of the module, so the committed go.mod stays standard-library only.
        local mod=$BUILD/official-mod
        rm -rf "$mod" && mkdir -p "$mod" && cp "$src/go.mod" "$src"/*.go "$mod/"
        (cd "$mod" \
            && go mod edit -require="github.com/apache/incubator-pegasus/go-client@$GOCLIENT_VERSION" \
            && timeout 600 go mod tidy \
            && GOFLAGS=-buildvcs=false go build -tags official -o "$BIN.tmp" .) \
            || die "cannot build the official go-client loadgen (is go-client@$GOCLIENT_VERSION available from the Go module proxy?); use BENCH_CLIENT=wire"
    else
        (cd "$src" && GOFLAGS=-buildvcs=false go build -o "$BIN.tmp" .) || die "loadgen build failed"
    fi
    find "$BUILD" -maxdepth 1 -name "loadgen-$CLIENT-*" ! -name "$(basename "$BIN").tmp" -delete
    mv "$BIN.tmp" "$BIN"
}

# ---- ceiling server ------------------------------------------------------------------------
CEILING_PID=
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_ceiling() {
    port_open "$CPORT" && { say "port $CPORT is already in use; not starting the ceiling"; return 1; }
    "$PY" "$HERE/ceiling.py" --host 127.0.0.1 --port "$CPORT" --db "$BUILD/ceiling-db" \
        >"$RUN/ceiling.log" 2>&1 &
    CEILING_PID=$!
    for _ in $(seq 100); do
        port_open "$CPORT" && { say "ceiling server pid $CEILING_PID on 127.0.0.1:$CPORT"; return 0; }
        kill -0 "$CEILING_PID" 2>/dev/null || { say "ceiling server died: $(tail -3 "$RUN/ceiling.log")"; CEILING_PID=; return 1; }
        sleep 0.1
    done
    say "ceiling server did not open its port in 10 s"
    return 1
}
stop_ceiling() {
    if [[ -n $CEILING_PID ]]; then
        kill -TERM "$CEILING_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$CEILING_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CEILING_PID" 2>/dev/null || true
        wait "$CEILING_PID" 2>/dev/null || true
        CEILING_PID=
    fi
}
trap stop_ceiling EXIT
trap 'exit 130' INT TERM

# ---- one loadgen invocation; appends its JSON line tagged with target and phase ------------
# usage: lg TARGET PHASE TIMEOUT loadgen-args...
lg() {
    local target=$1 phase=$2 tmo=$3 out
    shift 3
    if out=$(timeout "$tmo" "$BIN" -client "$CLIENT" -records "$RECORDS" -value "$VALUE" "$@" \
            2>>"$RUN/loadgen-$target.stderr") && [[ $out == \{*\} ]]; then
        LAST=$out
        if [[ $phase == peak || $phase == half ]] && (( RETRY_LEFT > 0 )) && disturbed "$out"; then
            return 3   # measured while other processes were busy: caller retries
        fi
        echo "${out%\}},\"target\":\"$target\",\"phase\":\"$phase\"}" >>"$RESULTS"
        return 0
    fi
    return 1
}
# measure: lg with up to BENCH_RETRIES re-runs of a run disturbed by other processes
measure() {
    local rc
    RETRY_LEFT=$RETRIES
    while true; do
        rc=0
        lg "$@" || rc=$?
        (( rc == 3 )) || return $rc
        say "[$1] run disturbed: $(other_of "$LAST")% CPU used by other processes; retrying in 10 s"
        RETRY_LEFT=$((RETRY_LEFT - 1))
        sleep 10
    done
}
RETRY_LEFT=0
other_of() { "$PY" -c 'import json,sys; print(int((json.loads(sys.argv[1]).get("cpu") or {}).get("other_pct", 0)))' "$1"; }
disturbed() { (( $(other_of "$1") > MAX_OTHER )); }
summary_of() {  # one-line progress text from a loadgen JSON line
    "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); c=r.get("cpu") or {}; print("%s ops/s  p50 %s  p99 %s  p99.9 %s ms  errors %s  cpu%% server %s loadgen %s other %s" % (format(r["ops_per_sec"], ",.0f"), r["p50_ms"], r["p99_ms"], r["p999_ms"], r["errors"], c.get("server_pct"), c.get("loadgen_pct"), c.get("other_pct")))' "$1"
}

unavailable() {  # TARGET REASON
    local reason=${2//\"/\'}
    echo "{\"target\":\"$1\",\"phase\":\"unavailable\",\"reason\":\"${reason//$'\n'/ }\"}" >>"$RESULTS"
    say "$1 unavailable: $2"
    STATUS=1
}

half_load() {  # TARGET META TABLE SERVER_PIDS: open loop at 50% of the readonly/uniform peak
    local target=$1 meta=$2 table=$3 pids=$4 rate
    [[ " $HALF_TARGETS " == *" $target "* ]] || return 0
    if ! rate=$("$PY" "$HERE/report.py" "$RESULTS" --half-rate "$target"); then
        say "[$target] no readonly/uniform peak measured; skipping the half-load run"
        return 0
    fi
    if measure "$target" half "$RUN_TIMEOUT" -meta "$meta" -table "$table" -workload readonly -dist uniform \
            -threads "$HALF_THREADS" -target-qps "$rate" -duration "${SECS}s" -warmup "${WARMUP}s" \
            -server-pids "$pids"; then
        say "[$target] half load ($rate ops/s target): $(summary_of "$LAST")"
    else
        say "[$target] half load FAILED"; STATUS=1
    fi
}

bench_target() {  # TARGET META TABLE SERVER_PIDS
    local target=$1 meta=$2 table=$3 pids=$4 wl dist
    say "[$target] pre-loading $RECORDS x $VALUE B records into $table via $meta"
    if ! lg "$target" load "$LOAD_TIMEOUT" -meta "$meta" -table "$table" -load -duration 0 -threads "$THREADS"; then
        unavailable "$target" "load failed: $(tail -2 "$RUN/loadgen-$target.stderr" 2>/dev/null)"
        return 1
    fi
    # Read-only runs first, then the half-load run, then the write workloads: writes leave
    # RocksDB compaction work behind that would otherwise slow the read measurements.
    local order="" half_done=0
    for wl in readonly $WORKLOADS; do [[ " $WORKLOADS " == *" $wl "* && " $order " != *" $wl "* ]] && order+=" $wl"; done
    for wl in $order; do
        for dist in $DISTS; do
            if measure "$target" peak "$RUN_TIMEOUT" -meta "$meta" -table "$table" -workload "$wl" -dist "$dist" \
                    -threads "$THREADS" -duration "${SECS}s" -warmup "${WARMUP}s" -server-pids "$pids"; then
                say "[$target] $wl/$dist: $(summary_of "$LAST")"
            else
                say "[$target] $wl/$dist: FAILED ($(tail -1 "$RUN/loadgen-$target.stderr" 2>/dev/null))"
                STATUS=1
            fi
        done
        if [[ $wl == readonly ]]; then half_load "$target" "$meta" "$table" "$pids"; half_done=1; fi
    done
    (( half_done )) || half_load "$target" "$meta" "$table" "$pids"
    if [[ $target == ours && $CLEANUP == 1 ]]; then
        say "[$target] removing the $RECORDS benchmark records from $table"
        lg "$target" unload "$LOAD_TIMEOUT" -meta "$meta" -table "$table" -unload -duration 0 -threads "$THREADS" \
            || { say "[$target] cleanup FAILED"; STATUS=1; }
    fi
}

STATUS=0
build_loadgen
nruns=$(( $(wc -w <<<"$WORKLOADS") * $(wc -w <<<"$DISTS") + 1 ))
say "results in $RUN; about $(( $(wc -w <<<"$TARGETS") * nruns * (SECS + WARMUP + 1) / 60 + 1 )) min plus pre-loads"
for target in $TARGETS; do
    case $target in
        ours)
            ours_pids=${BENCH_OURS_PIDS:-$(pgrep -f 'pegasus_server (meta|replica)' 2>/dev/null | tr '\n' ',' || true)}
            bench_target ours "$META" "$TABLE" "$ours_pids" || true ;;
        ceiling)
            if start_ceiling; then
                bench_target ceiling "127.0.0.1:$CPORT" temp "$CEILING_PID" || true
            else
                unavailable ceiling "could not start tools/bench/ceiling.py on port $CPORT"
            fi
            stop_ceiling ;;
        *) die "unknown target '$target' in BENCH_TARGETS (ours, ceiling)" ;;
    esac
done
"$PY" "$HERE/report.py" "$RESULTS"
echo "results: $RESULTS"
exit $STATUS
