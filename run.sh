#!/usr/bin/env bash
# pegasus-py developer entry point, with upstream's command names.
#   ./run.sh start_onebox [-m META_COUNT] [-r REPLICA_COUNT] [-p PARTITIONS] [-w]
#   ./run.sh stop_onebox | clear_onebox | list_onebox
#   ./run.sh start_onebox_instance | stop_onebox_instance | restart_onebox_instance  (-m N | -r N)
#   ./run.sh test [pytest args]     the whole suite (unit, simulation, integration, official clients)
#   ./run.sh bench                  benchmarks (not part of test)
#   ./run.sh bench-ab [--a REV] [--b REV|worktree] [--pairs N] [--rate R]
#                                   interleaved A/B benchmark of two versions (fresh oneboxes)
#   ./run.sh chaos [--duration S]   chaos test: SIGKILL replica servers under load, check
#                                   linearizability (a short one is part of test; default 30 min)
#   ./run.sh shell [COMMAND...]     pegasus_shell on the onebox (interactive without a command)
#   ./run.sh help
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

ensure_venv() {
    # Creates the virtualenv and installs pegasus-py on first use (and when requirements change).
    local stamp="$VENV/.installed" want
    want="$(cat requirements.txt requirements-test.txt setup.py | sha1sum | cut -d' ' -f1)"
    if [[ -x "$PY" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
    echo ">>> preparing the virtualenv in $VENV"
    [[ -x "$PY" ]] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip >/dev/null
    "$PY" -m pip install -q -r requirements.txt -r requirements-test.txt
    # (setuptools warns about editable installs on stderr; show its output only on failure)
    "$PY" -m pip install -q --no-deps -e . 2>/dev/null || "$PY" -m pip install --no-deps -e .
    echo "$want" > "$stamp"
}

onebox() { "$PY" tools/onebox.py "$@"; }

cmd="${1:-help}"; shift || true
case "$cmd" in
    start_onebox)
        ensure_venv
        args=(); wait=120
        while [[ $# -gt 0 ]]; do
            case "$1" in
                -m|--meta_count) args+=(-m "$2"); shift 2;;
                -r|--replica_count) args+=(-r "$2"); shift 2;;
                -p|--partition_count) args+=(-p "$2"); shift 2;;
                -w|--wait) shift;;   # start_onebox always waits until every partition serves
                --set) args+=(--set "$2"); shift 2;;
                -h|--help) "$PY" tools/onebox.py start --help; exit 0;;
                *) echo "start_onebox: unknown option $1 (see ./run.sh start_onebox --help)" >&2; exit 2;;
            esac
        done
        onebox start "${args[@]}" --wait "$wait";;
    stop_onebox) ensure_venv; onebox stop;;
    clear_onebox) ensure_venv; onebox clear;;
    list_onebox) ensure_venv; onebox list;;
    start_onebox_instance|stop_onebox_instance|restart_onebox_instance)
        ensure_venv; onebox "${cmd%_onebox_instance}_instance" "$@";;
    test) ensure_venv; exec bash "$ROOT/tools/run_tests.sh" "$@";;
    bench)
        # Drives the running onebox (BENCH_META, default 127.0.0.1:34601 + ONEBOX_PORT_OFFSET);
        # without one, a fresh onebox in .build/bench-onebox on those ports. Its
        # mutation_2pc_min_replica_count is 1 so that the one-replica table of target ours1 takes
        # writes; a healthy 3-replica partition still waits for all its secondaries.
        ensure_venv
        bench_off="${ONEBOX_PORT_OFFSET:-0}"
        export BENCH_META="${BENCH_META:-127.0.0.1:$((34601 + bench_off))}"
        export BENCH_CEILING_PORT="${BENCH_CEILING_PORT:-$((34701 + bench_off))}"
        bench_first="${BENCH_META%%,*}"
        if (exec 3<>"/dev/tcp/${bench_first%:*}/${bench_first##*:}") 2>/dev/null; then
            exec bash "$ROOT/tools/bench/run_bench.sh" "$@"
        fi
        if [[ "$bench_first" != "127.0.0.1:$((34601 + bench_off))" ]]; then
            echo "bench: no meta server answers at $bench_first (BENCH_META)" >&2; exit 2
        fi
        export ONEBOX_DIR="$ROOT/.build/bench-onebox"
        onebox clear >/dev/null
        trap 'onebox stop >/dev/null' EXIT
        onebox start -m 1 -r 3 --set replication.mutation_2pc_min_replica_count=1
        # (exit here: bash must not read on in this file after a long run, it may have changed)
        rc=0; bash "$ROOT/tools/bench/run_bench.sh" "$@" || rc=$?
        exit "$rc";;
    bench-ab) ensure_venv; exec "$PY" tools/bench/ab.py "$@";;
    chaos)
        ensure_venv
        args=("$@")
        [[ " ${args[*]} " == *" --duration "* ]] || args=(--duration 1800 "${args[@]}")
        exec "$PY" tools/chaos/run_chaos.py "${args[@]}";;
    shell)
        ensure_venv
        off="${ONEBOX_PORT_OFFSET:-0}"
        metas="127.0.0.1:$((34601 + off)),127.0.0.1:$((34602 + off)),127.0.0.1:$((34603 + off))"
        exec "$PY" -m pegasus_shell --meta "${SHELL_META:-$metas}" "$@";;
    help|-h|--help) usage;;
    *) echo "unknown command: $cmd" >&2; usage >&2; exit 2;;
esac
