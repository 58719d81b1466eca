#!/usr/bin/env bash
# pegasus-py developer entry point, with upstream's command names.
#   ./run.sh start_onebox [-m META_COUNT] [-r REPLICA_COUNT] [-p PARTITIONS] [-w]
#   ./run.sh stop_onebox | clear_onebox | list_onebox
#   ./run.sh start_onebox_instance | stop_onebox_instance | restart_onebox_instance  (-m N | -r N)
#   ./run.sh test [pytest args]     the whole suite (unit, simulation, integration, official clients)
#   ./run.sh bench                  benchmarks (not part of test)
#   ./run.sh help
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

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
        # Drives the running onebox; without one, a fresh onebox in .build/bench-onebox.
        ensure_venv
        if (exec 3<>/dev/tcp/127.0.0.1/34601) 2>/dev/null; then
            exec bash "$ROOT/tools/bench/run_bench.sh" "$@"
        fi
        export ONEBOX_DIR="$ROOT/.build/bench-onebox"
        onebox clear >/dev/null
        onebox start -m 1 -r 3
        trap 'onebox stop >/dev/null' EXIT
        bash "$ROOT/tools/bench/run_bench.sh" "$@";;
    help|-h|--help) usage;;
    *) echo "unknown command: $cmd" >&2; usage >&2; exit 2;;
esac
