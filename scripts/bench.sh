#!/usr/bin/env bash
# Runs every benchmark target (chat-bench targets: issues 5 and 8) on this
# machine and prints the method's facts and the results table that
# BENCHMARKS.md holds.
#
# usage: scripts/bench.sh [-d SECONDS] [-b REV] [-w]
#   -d SECONDS   seconds measured per fan-out run (ramp steps take half); default 10
#   -b REV       also measure the chat-server of git revision REV (e.g. main),
#                first, in the same run, with the same bench: before and after
#   -w           then the WebSocket targets too (chat-bench web-targets, issue 10:
#                about 3 more minutes)
#
# Needs 2 CPUs for the intended set-up (server pinned to CPU 0 with taskset,
# bench on CPU 1) and a descriptor limit of at least 20,100 (hard limit;
# chat-bench raises its soft limit itself). Takes about 4 minutes per server.
set -euo pipefail
cd "$(dirname "$0")/.."

dur=10
before=
web=
while getopts "d:b:wh" opt; do
    case $opt in
        d) dur=$OPTARG ;;
        b) before=$OPTARG ;;
        w) web=1 ;;
        *) sed -n '2,15p' "$0"; exit 2 ;;
    esac
done

# Both crates of the workspace (default-members): chat-bench starts the
# chat-server that this puts next to it in target/release/.
cargo build --release --bins --quiet

echo "== machine"
echo "nproc:   $(nproc)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "kernel:  $(uname -r)"
echo "nofile:  soft $(ulimit -Sn), hard $(ulimit -Hn)"
echo "taskset: $(command -v taskset || echo 'not found: server and bench are not pinned')"
echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg) (before)"
echo "git:     $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (modified)')"
echo

if [ -n "$before" ]; then
    # REV's sources, unpacked (no worktree, no change to the repository),
    # built into their own target directory.
    rev=$(git rev-parse --short "$before^{commit}")
    src=$(mktemp -d)
    trap 'rm -rf "$src"' EXIT
    git archive "$rev" | tar -x -C "$src"
    cargo build --release --quiet --bin chat-server \
        --manifest-path "$src/Cargo.toml" --target-dir target/before
    echo "== before: chat-server of $before ($rev)"
    target/release/chat-bench targets -d "$dur" --server target/before/release/chat-server
    echo
    echo "== after: chat-server of $(git rev-parse --short HEAD)"
fi
target/release/chat-bench targets -d "$dur"
if [ -n "$web" ]; then
    echo
    echo "== WebSocket targets"
    target/release/chat-bench web-targets -d "$dur"
fi
echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg) (after)"
