# What the serving benchmarks share (sourced by serve.sh): helpers, a work
# directory, the servers' process groups (killed on exit), MLServer's venv, and stopping a
# server.
#
# The sourcing script sets: here, cache, python. It gets: log, median, calc, free_port, work,
# running, venv, peer (empty, or why MLServer's column is n/a), stop, and for the tables
# med.
log() { echo "bench: $*" >&2; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
calc() { awk "BEGIN {print $*}"; }
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mkdir -p "$cache"
work=$(mktemp -d)
running=() # process groups of the servers started and not yet stopped
cleanup() {
    local pid
    for pid in "${running[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The peer, in a venv made once per set of pinned requirements. A failure is reported, not
# fatal: ciclo's figures are still worth printing.
venv=$cache/serve-venv
peer=""
key=$({ cat "$here/requirements-serve.txt"; "$python" --version; } | sha256sum | cut -c1-16)
if [[ "$(cat "$venv/.requirements-key" 2>/dev/null)" != "$key" ]]; then
    log "making the MLServer venv in $venv (once; several minutes)"
    rm -rf "$venv"
    if ! { "$python" -m venv "$venv" &&
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            -r "$here/requirements-serve.txt"; } >"$cache/serve-venv.log" 2>&1; then
        reason=$(grep -m1 '^ERROR' "$cache/serve-venv.log" || tail -1 "$cache/serve-venv.log")
        peer="n/a (pip install failed: ${reason:-no message}; see $cache/serve-venv.log)"
        rm -rf "$venv"
    else
        echo "$key" >"$venv/.requirements-key"
    fi
fi

# Stops the server `pid` (its whole process group): SIGTERM, then SIGKILL after 20 s.
stop() {
    local i p kept=()
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${running[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    running=("${kept[@]}")
}

# The median of a space-separated list.
med() {
    local v
    read -ra v <<<"$1"
    median "${v[@]}"
}
