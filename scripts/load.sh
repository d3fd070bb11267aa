#!/usr/bin/env bash
# Load test with real chat-client processes (issue 5).
#
# usage: scripts/load.sh [-n CLIENTS] [-d SECONDS] [HOST] [PORT]
#   -n CLIENTS   chat-client processes (default 50)
#   -d SECONDS   how long they chat (default 10); each sends 2 lines/s
#   HOST PORT    a running server; without them a chat-server is started on a
#                free port of 127.0.0.1 and stopped at the end
#
# Every client logs in under its own name; once all are in, each sends its
# lines at a modest pace (numbered, staggered); once every client has read
# every line (or a deadline passes), stdin is closed, which makes each send
# /quit and exit. Then it prints how many joined, how many had all their own
# lines echoed (sent), how many read every line of every client in each
# sender's order (received) and how many exited with status 0, and exits 1
# if any client fell short. Bounded in time (at most SECONDS + 60 s +
# CLIENTS/20 s); every process it started is stopped on exit, by process group.
#
# Binaries: $CHAT_CLIENT and $CHAT_SERVER if set, else target/release/ (built
# with cargo if missing).
set -euo pipefail
set -m # each background job gets its own process group, so cleanup can stop it whole

usage() { sed -n '4,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
clients=50
duration=10
while getopts "n:d:h" opt; do
    case $opt in
        n) clients=$OPTARG ;;
        d) duration=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $clients =~ ^[1-9][0-9]*$ ]] || { echo "load: -n wants a positive number" >&2; exit 2; }
[[ $duration =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "load: -d wants seconds" >&2; exit 2; }
(($# <= 2)) || usage
host=${1:-}
port=${2:-}
if [[ -n $host && -z $port ]]; then port=53000; fi

root=$(cd "$(dirname "$0")/.." && pwd)
client=${CHAT_CLIENT:-$root/target/release/chat-client}
server=${CHAT_SERVER:-$root/target/release/chat-server}
if [[ ! -x $client || (-z $host && ! -x $server) ]]; then
    (cd "$root" && cargo build --release --quiet --bin chat-client --bin chat-server)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/chat-load.XXXXXX")
jobs_started=()
server_pid=
cleanup() {
    local status=$?
    for pid in "${jobs_started[@]}"; do
        kill -- "-$pid" 2>/dev/null || true
    done
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ((status == 0)); then
        rm -rf "$work"
    else
        echo "load: logs kept in $work" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the server
if [[ -z $host ]]; then
    "$server" --host 127.0.0.1 --port 0 --no-web --max-clients $((clients + 100)) 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log" | head -1)
        [[ -n $port ]] && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n $port ]] || { echo "load: the server did not start" >&2; exit 1; }
    host=127.0.0.1
    echo "load: started chat-server on $host:$port (pid $server_pid)"
fi

# --- the clients
run=$(printf '%04x' $((RANDOM % 65536)))
prefix="ld${run}x" # names ld<run>x<i>: ours alone, even on a busy server
lines=$(awk -v d="$duration" 'BEGIN { n = int(d * 2 + 0.5); print (n < 1 ? 1 : n) }')
pace=0.5
total=$((clients * lines))

run_client() {
    local i=$1
    {
        until [[ -e $work/go ]]; do sleep 0.1; done
        sleep "$(awk -v i="$i" -v n="$clients" -v p="$pace" 'BEGIN { print i * p / n }')"
        for ((k = 0; k < lines; k++)); do
            [[ -e $work/done ]] && break
            echo "m $k"
            sleep "$pace"
        done
        touch "$work/sent.$i"
        until [[ -e $work/done ]]; do sleep 0.2; done
    } | {
        st=0
        "$client" "$host" "$port" --name "$prefix$i" --keepalive 5 --retries 2 \
            >"$work/out.$i" 2>"$work/err.$i" || st=$?
        echo "$st" >"$work/status.$i"
    }
}

echo "load: $clients clients, $lines lines each over ${duration} s, to $host:$port"
for ((i = 0; i < clients; i++)); do
    run_client "$i" &
    jobs_started+=($!)
done

# Waits until every client has joined (or exited), at most SECONDS.
wait_joined() {
    local limit=$1 start=$SECONDS n i
    while :; do
        n=0
        for ((i = 0; i < clients; i++)); do
            if [[ -e $work/status.$i ]] ||
                grep -qxF "[SERVER]: $prefix$i joined the chat!" "$work/out.$i" 2>/dev/null; then
                n=$((n + 1))
            fi
        done
        ((n == clients)) && return
        ((SECONDS - start < limit)) || return
        sleep 0.3
    done
}

# Waits until every client has read all $total lines (or exited), or all
# have sent everything and no line has arrived for 3 s, or SECONDS pass.
wait_delivered() {
    local limit=$1 start=$SECONDS quiet_since=$SECONDS last=-1 n sent sum c i
    while :; do
        n=0 sent=0 sum=0
        for ((i = 0; i < clients; i++)); do
            c=$(grep -c "^$prefix[0-9]*: m " "$work/out.$i" 2>/dev/null || true)
            sum=$((sum + ${c:-0}))
            if [[ ${c:-0} == "$total" || -e $work/status.$i ]]; then n=$((n + 1)); fi
            if [[ -e $work/sent.$i || -e $work/status.$i ]]; then sent=$((sent + 1)); fi
        done
        ((n == clients)) && return
        if ((sum != last)); then
            last=$sum
            quiet_since=$SECONDS
        fi
        ((sent == clients && SECONDS - quiet_since >= 3)) && return
        ((SECONDS - start < limit)) || return
        sleep 0.3
    done
}

t0=$SECONDS
wait_joined $((20 + clients / 20))
echo "load: logins done after $((SECONDS - t0)) s; chatting"
touch "$work/go"
wait_delivered $(awk -v d="$duration" 'BEGIN { print int(d + 0.999) + 21 }')
touch "$work/done"

# Everyone quits (stdin closes); give them 15 s to exit.
end=$((SECONDS + 15))
for pid in "${jobs_started[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
done

# --- the report
joined=0 sent=0 received=0 exited=0 first_bad=
for ((i = 0; i < clients; i++)); do
    before=$((joined + sent + received + exited))
    out=$work/out.$i
    name=$prefix$i
    grep -qxF "[SERVER]: $name joined the chat!" "$out" 2>/dev/null && joined=$((joined + 1))
    # Every line of ours, as the server sent it: per sender, numbered 0, 1, ...
    read -r own got bad < <(awk -v p="$prefix" -v me="$name:" '
        index($0, p) == 1 && $2 == "m" && NF == 3 {
            if ($3 != next_k[$1] + 0) bad++
            next_k[$1] = $3 + 1
            got++
            if ($1 == me) own++
        }
        END { print own + 0, got + 0, bad + 0 }' "$out" 2>/dev/null || echo "0 0 1")
    ((own == lines)) && sent=$((sent + 1))
    ((got == total && bad == 0)) && received=$((received + 1))
    [[ $(cat "$work/status.$i" 2>/dev/null) == 0 ]] && exited=$((exited + 1))
    if [[ -z $first_bad ]] && ((joined + sent + received + exited - before < 4)); then
        first_bad=$i
    fi
done
echo "load: joined   $joined of $clients"
echo "load: sent     $sent of $clients (all $lines of their lines came back to them)"
echo "load: received $received of $clients (all $total lines, each sender's in order)"
echo "load: exited 0 $exited of $clients"
if ((joined < clients || sent < clients || received < clients || exited < clients)); then
    echo "load: the first client that fell short, $prefix$first_bad (exit status $(cat "$work/status.$first_bad" 2>/dev/null || echo none)):" >&2
    tail -n 3 "$work/err.$first_bad" 2>/dev/null | sed 's/^/  stderr: /' >&2
    tail -n 3 "$work/out.$first_bad" 2>/dev/null | sed 's/^/  stdout: /' >&2
    echo "load: FAILED" >&2
    exit 1
fi
echo "load: OK"
