# Shared shell helpers for Skein's scripts: Debian package installation and
# a throwaway PostgreSQL server for the store tests. Sourced, not run.

# Installs the Debian packages that are missing (as root, or through sudo).
need_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Installing Debian packages: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# GStreamer for calls: the libraries to build against, and the plugins a
# call uses at run time (Opus and the test sources in base, VP8, V4L2 and
# PulseAudio in good; for H.264, x264 in ugly, the parser in bad and the
# decoder in libav).
need_gstreamer() {
    need_packages pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
        gstreamer1.0-plugins-bad gstreamer1.0-libav
}

# Starts a private PostgreSQL on 127.0.0.1 and exports SKEIN_TEST_POSTGRES_URL
# (and SKEIN_TEST_POSTGRES_SOCKET_DIR, the directory of its Unix socket).
# It is stopped and removed when the calling script exits. Tests run it
# with fsync off; `start_postgres durable` keeps fsync on, as a deployment
# does (the benchmarks measure commits).
start_postgres() {
    local fsync="-c fsync=off"
    [ "${1:-}" = durable ] && fsync=""
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$bindir" ]; then
        echo "error: PostgreSQL server binaries not found under /usr/lib/postgresql" >&2
        return 1
    fi
    SKEIN_PG_DIR=$(mktemp -d /tmp/skein-pg.XXXXXX)
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 54329)
    local run=()
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$SKEIN_PG_DIR"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bindir/initdb" -D "$SKEIN_PG_DIR/data" -A trust -U skein >/dev/null
    "${run[@]}" "$bindir/pg_ctl" -D "$SKEIN_PG_DIR/data" -l "$SKEIN_PG_DIR/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $SKEIN_PG_DIR $fsync -c max_connections=300" start >/dev/null
    export SKEIN_TEST_POSTGRES_URL="postgres://skein@127.0.0.1:$port/postgres"
    # Its Unix socket, for the NAT lab's trackers, whose namespaces reach
    # no address of this machine.
    export SKEIN_TEST_POSTGRES_SOCKET_DIR="$SKEIN_PG_DIR"
    SKEIN_PG_STOP=("${run[@]}" "$bindir/pg_ctl" -D "$SKEIN_PG_DIR/data" -m immediate stop)
    trap stop_postgres EXIT
    echo "PostgreSQL for tests at $SKEIN_TEST_POSTGRES_URL" >&2
}

stop_postgres() {
    if [ -n "${SKEIN_PG_DIR:-}" ]; then
        "${SKEIN_PG_STOP[@]}" >/dev/null 2>&1 || true
        rm -rf "$SKEIN_PG_DIR"
    fi
}
