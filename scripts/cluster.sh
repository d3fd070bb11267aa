#!/usr/bin/env bash
# A cluster to try (PROTOCOL.md section 10): one Redis, N chat-servers, one room.
#
# usage: scripts/cluster.sh [N] [PORT] [WEB_PORT]
#   N          chat-server processes (default 2)
#   PORT       the chat port they all share (default 53000)
#   WEB_PORT   the web port they all share (default 8080)
#
# Starts redis-server on a free port of 127.0.0.1 with its data in a temporary
# directory (nothing kept on disk), then N chat-servers with --reuse-port on
# one chat port and one web port (the kernel spreads new connections over
# them) and --redis pointing at it, and prints how to join. Extra server flags
# go in $CHAT_SERVER_ARGS (e.g. CHAT_SERVER_ARGS="--node-ttl 3"). Logs go to
# the temporary directory (printed). Ctrl-C, or any of the processes exiting,
# stops them all (by PID) and removes the directory.
#
# Binaries: $CHAT_SERVER if set, else target/release/chat-server (built with
# cargo if missing); redis-server from PATH (Debian: apt-get install
# redis-server; scripts/test.sh installs it).
set -euo pipefail

usage() { sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
(($# <= 3)) || usage
n=${1:-2}
port=${2:-53000}
web_port=${3:-8080}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "cluster: N wants a positive number" >&2; exit 2; }
[[ $port =~ ^[0-9]+$ && $web_port =~ ^[0-9]+$ ]] || usage

command -v redis-server >/dev/null || {
    echo "cluster: redis-server not found; install it: apt-get install redis-server" >&2
    exit 1
}
root=$(cd "$(dirname "$0")/.." && pwd)
server=${CHAT_SERVER:-$root/target/release/chat-server}
if [[ ! -x $server ]]; then
    (cd "$root" && cargo build --release --quiet --bin chat-server)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/chat-cluster.XXXXXX")
pids=()
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "cluster: stopping ${#pids[@]} process(es)" >&2
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A loopback port nobody listens on (bash's /dev/tcp connects, or fails).
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "cluster: no free port found" >&2
    exit 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then
        break
    fi
    sleep 0.05
done
url="redis://127.0.0.1:$redis_port"

# shellcheck disable=SC2206 # word splitting of the extra flags is wanted
extra=(${CHAT_SERVER_ARGS:-})
for i in $(seq "$n"); do
    "$server" --port "$port" --web-port "$web_port" --reuse-port --redis "$url" "${extra[@]}" \
        2>"$work/server-$i.log" &
    pids+=($!)
done
# Each one logs its web line once it listens (or exits with one line).
for i in $(seq "$n"); do
    for _ in $(seq 200); do
        grep -q "web on " "$work/server-$i.log" 2>/dev/null && break
        kill -0 "${pids[$i]}" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q "web on " "$work/server-$i.log"; then
        echo "cluster: chat-server $i did not start:" >&2
        cat "$work/server-$i.log" >&2
        exit 1
    fi
done

cat <<EOF
A cluster of $n chat-servers and one Redis ($url), one room.
  join:     chat-client localhost $port   (or: nc localhost $port)
  browser:  http://localhost:$web_port/
  logs:     $work/ (server-1.log ... server-$n.log, redis.log)
  redis:    redis-cli -p $redis_port   (the room's keys start with chatroom:)
Each new connection goes to one of the servers (the kernel chooses); all
users are in the same room. Ctrl-C stops everything.
EOF

# Until Ctrl-C, or until one of them exits.
set +e
wait -n "${pids[@]}"
status=$?
set -e
if ((status != 0)); then
    echo "cluster: a process exited with status $status" >&2
fi
exit "$status"
