#!/usr/bin/env bash
# tools/bench/run_bench.sh — throughput/latency benchmark of our onebox against a "ceiling".
#
# Targets (BENCH_TARGETS), all driven by the same Go load generator (tools/bench/loadgen):
#   ours     our running onebox (BENCH_META), table BENCH_TABLE (`temp`: three replicas per
#            partition on the default onebox)
#   ours1    the SAME onebox, table BENCH_TABLE1: one replica per partition and the partition
#            count of BENCH_TABLE; created here when missing (and dropped at the end if it was
#            created here and BENCH_CLEANUP=1). It needs a cluster whose [replication]
#            mutation_2pc_min_replica_count is 1 (otherwise every write is ERR_NOT_ENOUGH_MEMBER
#            and the target is reported unavailable); `./run.sh bench` starts its own onebox so.
#   ceiling  tools/bench/ceiling.py, a minimal gevent + rocksdict get/put server: the upper bound
#            of a Python/gevent/RocksDB server on this machine (no replication)
# For every workload x key distribution it prints ops/s, the ratio to the ceiling and
# p50/p99/p99.9 latencies; for the write workloads of ours1 (BENCH_WORKLOADS1) the 3-replica
# and 1-replica figures side by side; and open-loop "half load" runs (each workload of
# BENCH_HALF_WORKLOADS, uniform keys, at 50% of that target's own closed-loop peak).
# ours and ours1 runs are interleaved per workload so that both see the same cluster state.
# It WRITES BENCH_RECORDS records (hash keys user0.., empty sort key) into our tables and
# removes them at the end (BENCH_CLEANUP): do not run it against a onebox that a test suite is
# using. Everything runs on 127.0.0.1; the ceiling server is started here and stopped by its PID.
# Results: .build/bench/results/<timestamp>/results.jsonl.
#
# Default runtime: 24 measured runs (ours 8 + 2 half-load, ours1 4, ceiling 8 + 2 half-load) of
# BENCH_SECONDS + BENCH_WARMUP (+ ~1 s) each: about 8 minutes at the defaults, plus three
# pre-loads (well under a minute each); runs disturbed by other processes are repeated (below).
#
# Environment (defaults):
#   BENCH_SECONDS=15        measured seconds per run (1..600)
#   BENCH_WARMUP=2          unmeasured warm-up seconds before each run
#   BENCH_THREADS=64        closed-loop workers (64 saturates the ceiling on the 2-core dev box)
#   BENCH_HALF_THREADS=64   worker pool of the open-loop half-load runs
#   BENCH_RECORDS=100000    records pre-loaded into each target (hash keys user0..)
#   BENCH_VALUE=1024        value size, bytes
#   BENCH_META=127.0.0.1:34601   our meta server(s), comma separated
#   BENCH_TABLE=temp        our table for target ours (must exist; the ceiling serves any name)
#   BENCH_TABLE1=temp_r1    our one-replica table for target ours1 (created when missing)
#   BENCH_CEILING_PORT=34701
#   BENCH_TARGETS="ours ours1 ceiling"    BENCH_HALF_TARGETS="ours ceiling"
#   BENCH_WORKLOADS="readonly writeonly rw11 rw30to1"   (ours, ceiling)
#   BENCH_WORKLOADS1="writeonly rw11"                   (ours1; default: those of the two that
#                                                        BENCH_WORKLOADS names)
#   BENCH_DISTS="uniform zipfian"
#   BENCH_HALF_WORKLOADS="readonly writeonly"   half-load runs (of the workloads a target runs);
#                           BENCH_HALF_TARGETS= / BENCH_HALF_WORKLOADS= (empty): no half-load run
#   BENCH_OURS_PIDS=        our server PIDs for the CPU columns (default: the processes listening
#                           on the meta's and its replica servers' ports, tools/bench/ours_table.py)
#   BENCH_RETRIES=2         re-runs of a measurement during which other processes used more
#   BENCH_MAX_OTHER=20      than BENCH_MAX_OTHER % CPU (a shared machine); the last try is kept
#   BENCH_CLEANUP=1         remove the pre-loaded records from our tables afterwards (0 = keep)
#   BENCH_BUILD_ONLY=0      1: only build the load generator and print its path
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
TABLE1=${BENCH_TABLE1:-temp_r1}
CPORT=${BENCH_CEILING_PORT:-34701}
TARGETS=${BENCH_TARGETS:-ours ours1 ceiling}
HALF_TARGETS=${BENCH_HALF_TARGETS-ours ceiling}
WORKLOADS=${BENCH_WORKLOADS:-readonly writeonly rw11 rw30to1}
if [[ -n ${BENCH_WORKLOADS1+x} ]]; then WORKLOADS1=$BENCH_WORKLOADS1; else
    WORKLOADS1=""   # default: the write workloads compared with one replica, as far as requested
    for w in writeonly rw11; do [[ " $WORKLOADS " == *" $w "* ]] && WORKLOADS1+=" $w"; done
    WORKLOADS1=${WORKLOADS1# }
fi
DISTS=${BENCH_DISTS:-uniform zipfian}
HALF_WORKLOADS=${BENCH_HALF_WORKLOADS-readonly writeonly}
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
for t in $TARGETS $HALF_TARGETS; do
    [[ $t == ours || $t == ours1 || $t == ceiling ]] || die "unknown target '$t' (ours, ours1, ceiling)"
done
for w in $WORKLOADS $WORKLOADS1 $HALF_WORKLOADS; do
    [[ $w =~ ^(readonly|writeonly|rw11|rw30to1)$ ]] || die "unknown workload '$w'"
done
for d in $DISTS; do [[ $d == uniform || $d == zipfian ]] || die "unknown distribution '$d'"; done
[[ $TABLE1 =~ ^[A-Za-z0-9_.-]+$ && $TABLE1 != "$TABLE" ]] || die "bad BENCH_TABLE1 '$TABLE1'"
command -v go >/dev/null || die "go is not installed"

PY=$ROOT/.venv/bin/python
[[ -x $PY ]] || PY=$(command -v python3)

RUN=$BUILD/results/$(date +%Y%m%d-%H%M%S)
RESULTS=$RUN/results.jsonl
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
    "$PY" -c 'import json,sys; print(json.dumps({"target": sys.argv[1], "phase": "unavailable", "reason": " ".join(sys.argv[2].split())}))' \
        "$1" "$2" >>"$RESULTS"
    say "$1 unavailable: $2"
    STATUS=1
}

# ---- per-target settings -------------------------------------------------------------------
declare -A T_META T_TABLE T_WLS T_PIDS T_STATE   # T_STATE: "" not loaded, ok, failed
T_META[ours]=$META;    T_TABLE[ours]=$TABLE;   T_WLS[ours]=$WORKLOADS
T_META[ours1]=$META;   T_TABLE[ours1]=$TABLE1; T_WLS[ours1]=$WORKLOADS1
T_META[ceiling]=127.0.0.1:$CPORT; T_TABLE[ceiling]=temp; T_WLS[ceiling]=$WORKLOADS
has() { [[ " $1 " == *" $2 "* ]]; }   # has LIST WORD
TABLE1_CREATED=0

info_line() {  # TARGET: table shape of an "ours" target, for the report
    local t=$1 shape p r
    shape=$("$PY" "$HERE/ours_table.py" --meta "${T_META[$t]}" info "${T_TABLE[$t]}" 2>/dev/null) || return 0
    p=${shape#partitions=}; p=${p%% *}; r=${shape##*replicas=}
    echo "{\"target\":\"$t\",\"phase\":\"info\",\"table\":\"${T_TABLE[$t]}\",\"partitions\":$p,\"replicas\":$r}" >>"$RESULTS"
    say "[$t] table ${T_TABLE[$t]}: $p partitions x $r replicas"
}

prepare_target() {  # TARGET: checks/creates the table; returns 1 (target unavailable) on failure
    local t=$1 out
    case $t in
        ours)
            if ! out=$("$PY" "$HERE/ours_table.py" --meta "$META" info "$TABLE" 2>&1); then
                unavailable ours "table $TABLE via $META: $out"; T_STATE[ours]=failed; return 1
            fi ;;
        ours1)
            say "[ours1] making sure table $TABLE1 (1 replica, partitions as $TABLE) exists and serves"
            if ! out=$("$PY" "$HERE/ours_table.py" --meta "$META" ensure "$TABLE1" --like "$TABLE" \
                    --replicas 1 --timeout 120 2>&1); then
                unavailable ours1 "table $TABLE1: ${out##*ours_table: }"; T_STATE[ours1]=failed; return 1
            fi
            [[ $out == *created=1* ]] && TABLE1_CREATED=1 ;;
    esac
    [[ $t == ceiling ]] || info_line "$t"
    return 0
}

preload() {  # TARGET: pre-load once, lazily before the target's first run
    local t=$1 why
    [[ ${T_STATE[$t]:-} == ok ]] && return 0
    [[ ${T_STATE[$t]:-} == failed ]] && return 1
    say "[$t] pre-loading $RECORDS x $VALUE B records into ${T_TABLE[$t]} via ${T_META[$t]}"
    if ! lg "$t" load "$LOAD_TIMEOUT" -meta "${T_META[$t]}" -table "${T_TABLE[$t]}" -load -duration 0 \
            -threads "$THREADS"; then
        unavailable "$t" "load failed: $(tail -2 "$RUN/loadgen-$t.stderr" 2>/dev/null)"
        T_STATE[$t]=failed; return 1
    fi
    # A load whose records cannot be read back (every write refused) makes the target unusable.
    if ! why=$("$PY" -c 'import json,sys
l=json.loads(sys.argv[1]).get("load") or {}
if l.get("verify_ok"): sys.exit(0)
s=(l.get("error_samples") or ["record user0 not readable after the load"])[0]
h=" (the cluster'"'"'s [replication] mutation_2pc_min_replica_count exceeds the table'"'"'s replica count: start the onebox with --set replication.mutation_2pc_min_replica_count=1)" if "ERR_NOT_ENOUGH_MEMBER" in s else ""
print("%s of %s writes failed, e.g. %s%s" % (l.get("errors"), l.get("records"), s, h)); sys.exit(1)' "$LAST"); then
        unavailable "$t" "pre-load into ${T_TABLE[$t]}: $why"
        T_STATE[$t]=failed; return 1
    fi
    T_STATE[$t]=ok
}

peak_run() {  # TARGET WORKLOAD DIST
    local t=$1 wl=$2 dist=$3
    preload "$t" || return 0
    if measure "$t" peak "$RUN_TIMEOUT" -meta "${T_META[$t]}" -table "${T_TABLE[$t]}" -workload "$wl" \
            -dist "$dist" -threads "$THREADS" -duration "${SECS}s" -warmup "${WARMUP}s" \
            -server-pids "${T_PIDS[$t]}"; then
        say "[$t] $wl/$dist: $(summary_of "$LAST")"
    else
        say "[$t] $wl/$dist: FAILED ($(tail -1 "$RUN/loadgen-$t.stderr" 2>/dev/null))"
        STATUS=1
    fi
}

half_run() {  # TARGET WORKLOAD: open loop at 50% of the target's WORKLOAD/uniform peak
    local t=$1 wl=$2 rate
    [[ ${T_STATE[$t]:-} == ok ]] || return 0
    if ! rate=$("$PY" "$HERE/report.py" "$RESULTS" --half-rate "$t" --workload "$wl"); then
        say "[$t] no $wl/uniform peak measured; skipping its half-load run"
        return 0
    fi
    if measure "$t" half "$RUN_TIMEOUT" -meta "${T_META[$t]}" -table "${T_TABLE[$t]}" -workload "$wl" \
            -dist uniform -threads "$HALF_THREADS" -target-qps "$rate" -duration "${SECS}s" \
            -warmup "${WARMUP}s" -server-pids "${T_PIDS[$t]}"; then
        say "[$t] half load $wl ($rate ops/s target): $(summary_of "$LAST")"
    else
        say "[$t] half load $wl FAILED"; STATUS=1
    fi
}

cleanup_target() {  # TARGET
    local t=$1
    [[ $t != ceiling && $CLEANUP == 1 && ${T_STATE[$t]:-} == ok ]] || return 0
    say "[$t] removing the $RECORDS benchmark records from ${T_TABLE[$t]}"
    lg "$t" unload "$LOAD_TIMEOUT" -meta "${T_META[$t]}" -table "${T_TABLE[$t]}" -unload -duration 0 \
        -threads "$THREADS" || { say "[$t] cleanup FAILED"; STATUS=1; }
}

# bench_group TARGET...: the targets' runs, interleaved per workload and distribution.
# Read-only runs (and their half-load runs) first, then the write workloads: writes leave
# RocksDB compaction work behind that would otherwise slow the read measurements.
bench_group() {
    local group=() t wl dist order=""
    for t in "$@"; do prepare_target "$t" && group+=("$t"); done
    (( ${#group[@]} )) || return 0
    for wl in readonly $WORKLOADS $WORKLOADS1; do
        has "$order" "$wl" || { for t in "${group[@]}"; do has "${T_WLS[$t]}" "$wl" && { order+=" $wl"; break; }; done; }
    done
    for wl in $order; do
        for dist in $DISTS; do
            for t in "${group[@]}"; do has "${T_WLS[$t]}" "$wl" && peak_run "$t" "$wl" "$dist"; done
        done
        for t in "${group[@]}"; do
            has "$HALF_TARGETS" "$t" && has "$HALF_WORKLOADS" "$wl" && has "${T_WLS[$t]}" "$wl" \
                && half_run "$t" "$wl"
        done
    done
    for t in "${group[@]}"; do cleanup_target "$t"; done
}

STATUS=0
build_loadgen
if [[ ${BENCH_BUILD_ONLY:-0} == 1 ]]; then echo "$BIN"; exit 0; fi   # for tools/bench/ab.py
mkdir -p "$RUN"
: >"$RESULTS"
nruns=0
for t in $TARGETS; do
    for wl in ${T_WLS[$t]}; do
        nruns=$((nruns + $(wc -w <<<"$DISTS")))
        has "$HALF_TARGETS" "$t" && has "$HALF_WORKLOADS" "$wl" && has "$DISTS" uniform && nruns=$((nruns + 1))
    done
done
say "results in $RUN; $nruns measured runs, about $(( nruns * (SECS + WARMUP + 1) / 60 + 1 )) min plus pre-loads (more when disturbed runs are repeated)"

cluster=()
for t in $TARGETS; do
    if [[ $t != ceiling && -n ${T_WLS[$t]} ]]; then cluster+=("$t"); fi
done
if (( ${#cluster[@]} )); then
    ours_pids=${BENCH_OURS_PIDS:-$("$PY" "$HERE/ours_table.py" --meta "$META" pids 2>/dev/null || true)}
    if [[ -z $ours_pids ]]; then   # not found via the meta: every pegasus server on the machine
        ours_pids=$(pgrep -f 'pegasus_server (meta|replica)' 2>/dev/null | tr '\n' ',' || true)
    fi
    say "our server PIDs (CPU columns): ${ours_pids:-none}"
    T_PIDS[ours]=$ours_pids; T_PIDS[ours1]=$ours_pids
    bench_group "${cluster[@]}"
    if [[ $TABLE1_CREATED == 1 && $CLEANUP == 1 ]]; then
        say "[ours1] dropping table $TABLE1 (created by this run)"
        "$PY" "$HERE/ours_table.py" --meta "$META" drop "$TABLE1" || { say "[ours1] drop FAILED"; STATUS=1; }
    fi
fi
if has "$TARGETS" ceiling; then
    if start_ceiling; then
        T_PIDS[ceiling]=$CEILING_PID
        bench_group ceiling
    else
        unavailable ceiling "could not start tools/bench/ceiling.py on port $CPORT"
    fi
    stop_ceiling
fi
"$PY" "$HERE/report.py" "$RESULTS"
echo "results: $RESULTS"
exit $STATUS
