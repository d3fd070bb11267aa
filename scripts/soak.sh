#!/usr/bin/env bash
# Soak test (issue 4): builds the release server, runs it on 127.0.0.1 (a
# free port the kernel picks) for a bounded time against normal users, slow
# readers, flooders, garbage senders and connect/close churn, and prints
# deliveries, drops with their reasons, the server's peak RSS and CPU, and
# whether any invariant broke. Exits non-zero if one did.
#
# usage: scripts/soak.sh [-d SECONDS] [-s SEED]     (default 180 s)
set -euo pipefail

duration=180
seed=4
while getopts "d:s:h" opt; do
    case $opt in
        d) duration=$OPTARG ;;
        s) seed=$OPTARG ;;
        h) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "usage: $0 [-d SECONDS] [-s SEED]" >&2; exit 2 ;;
    esac
done
[[ $duration =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak: -d wants seconds" >&2; exit 2; }

cd "$(dirname "$0")/.."
cargo build --release --bin chat-server
work=target/soak
mkdir -p "$work"
log=$work/server.log
pidfile=$work/server.pid
rm -f "$pidfile"

soak_pid=
cleanup() {
    # Stop only what this script started, by PID.
    if [[ -n $soak_pid ]] && kill -0 "$soak_pid" 2>/dev/null; then
        kill "$soak_pid" 2>/dev/null || true
        wait "$soak_pid" 2>/dev/null || true
    fi
    if [[ -f $pidfile ]]; then
        local spid
        spid=$(cat "$pidfile")
        if kill -0 "$spid" 2>/dev/null; then
            kill "$spid" 2>/dev/null || true
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 scripts/soak.py --server target/release/chat-server --log "$log" \
    --pidfile "$pidfile" --duration "$duration" --seed "$seed" &
soak_pid=$!
status=0
wait "$soak_pid" || status=$?
soak_pid=
echo "server log: $log"
exit "$status"
