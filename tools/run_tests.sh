#!/usr/bin/env bash
# The whole suite, as ./run.sh test runs it (and CI through .ci/run):
#   1. unit and simulation tests (pytest, in-process);
#   2. integration tests: real server processes on loopback (bad input, SIGKILL crash test);
#   3. the chaos test: replica servers SIGKILLed under official-client load, the history checked
#      for linearizability (CHAOS=0 skips it, CHAOS_SEED=N replays a seed);
#   4. the official clients' own test suites, each against a fresh onebox.
# Extra arguments go to pytest (e.g. ./run.sh test -k codec). PEERS=0 skips step 4.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
export ONEBOX_DIR="$ROOT/.build/test-onebox"
export PYTHONPATH="$ROOT"
failed=()

for port in 34601 34602 34603 34801 34802 34803; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use: stop the running cluster first (./run.sh stop_onebox)" >&2
        exit 2
    fi
done

# Linux gives outgoing connections local ports from its ephemeral range (32768-60999 by default),
# which holds the onebox's ports: a connection that draws one as its local port keeps a restarted
# or added server from listening there (the likely cause of a CI failure, a fourth replica server
# that exited at start). The suite owns this machine, so it reserves those ports when it may
# (root; the setting belongs to this network namespace and only narrows the ports the kernel
# picks by itself).
reserved=/proc/sys/net/ipv4/ip_local_reserved_ports
onebox_ports="34601-34610,34801-34810"
if [[ -w "$reserved" ]] && cur="$(cat "$reserved")" \
        && { [[ ",$cur," == *",$onebox_ports,"* ]] \
             || echo "${cur:+$cur,}$onebox_ports" > "$reserved" 2>/dev/null; }; then
    echo "=== ports $onebox_ports reserved from the ephemeral range (net.ipv4.ip_local_reserved_ports: $(cat "$reserved"))"
else
    echo "=== note: cannot reserve ports $onebox_ports in net.ipv4.ip_local_reserved_ports (not root?): a server that restarts may find its port taken by a connection's local port"
fi

echo "=== pytest: unit, simulation and integration tests"
dirs=()
for d in tests/unit tests/sim tests/integration; do [[ -d "$d" ]] && dirs+=("$d"); done
"$PY" -m pytest -q -p no:cacheprovider "${dirs[@]}" "$@"
rc=$?
[[ $rc -eq 0 ]] || failed+=("pytest (exit $rc)")

if [[ "${CHAOS:-1}" != "0" && $# -eq 0 ]]; then
    echo "=== chaos: the checker's self-test, then a short run (SIGKILLs under load, Porcupine)"
    "$PY" tools/chaos/run_chaos.py --self-test || failed+=("chaos self-test")
    "$PY" tools/chaos/run_chaos.py --duration 60 --seed "${CHAOS_SEED:-$RANDOM}"
    rc=$?
    [[ $rc -eq 0 ]] || failed+=("chaos (exit $rc)")
fi

if [[ "${PEERS:-1}" != "0" && $# -eq 0 ]]; then
    echo "=== official clients: installing (cached in .build/peers)"
    if ! python3 tests/peers/run_peers.py setup; then
        failed+=("peer setup")
    else
        for suite in go go-old python; do
            echo "=== official clients: $suite suite on a fresh onebox"
            "$PY" tools/onebox.py clear >/dev/null
            if ! "$PY" tools/onebox.py start -m 3 -r 3; then
                failed+=("$suite (onebox did not start)")
                continue
            fi
            python3 tests/peers/run_peers.py "$suite" \
                --meta 127.0.0.1:34601,127.0.0.1:34602,127.0.0.1:34603 --replicas 3 \
                || failed+=("$suite")
            "$PY" tools/onebox.py stop >/dev/null
        done
        "$PY" tools/onebox.py clear >/dev/null
    fi
fi

echo "=== summary"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all suites passed"
