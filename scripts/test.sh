#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine with Rust.
#
# usage: scripts/test.sh [EXTRA CARGO TEST ARGS...]
#   e.g. scripts/test.sh --test browser
#
# First installs the Debian packages the tests need and that are missing
# (apt-get install -y, as root or through sudo); without the rights to do so
# it prints one line naming them and exits 1. Then runs
# `cargo test --release --workspace` with the extra arguments passed through.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian package -> a file that shows it is installed.
declare -A needs=(
    [chromium]=/usr/bin/chromium         # tests/browser.rs: the page in a real browser
    [redis-server]=/usr/bin/redis-server # tests/cluster*.rs: several servers, one room
    [libnss3-tools]=/usr/bin/certutil    # tests/browser_tls.rs: Chromium trusts the test CA
)

missing=()
for pkg in "${!needs[@]}"; do
    [[ -e ${needs[$pkg]} ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "scripts/test.sh: missing Debian packages; install them: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "== apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

echo "== cargo test --release --workspace $*"
exec cargo test --release --workspace "$@"
