#!/usr/bin/env bash
# Local RabbitMQ + PostgreSQL for busline tests and development.
#
#   scripts/services.sh start              start both (idempotent)
#   scripts/services.sh stop               stop both (idempotent)
#   scripts/services.sh status             say what runs (exit 0 only if both run)
#   scripts/services.sh env                print `export BUSLINE_TEST_*_URL=...` lines
#   scripts/services.sh start-rabbitmq | stop-rabbitmq [--fast] | restart-rabbitmq [--fast]
#   scripts/services.sh start-postgres | stop-postgres
#   scripts/services.sh is-running rabbitmq|postgres   (quiet, exit status only)
#   scripts/services.sh rabbitmqctl|rabbitmq-diagnostics|rabbitmq-queues ARGS...
#                                          run that CLI tool against our node
#   scripts/services.sh add-vhosts|delete-vhosts NAME...  (one CLI call; guest gets all perms)
#   scripts/services.sh start-cluster | stop-cluster | cluster-env
#                                          a three-node RabbitMQ cluster beside the single node
#                                          (ports 5681-5683; one node: BUSLINE_RABBIT_PORT=5682
#                                          scripts/services.sh stop-rabbitmq|start-rabbitmq)
#
# Everything listens on 127.0.0.1 only and keeps its state in <repo>/.services/
# (gitignored), so nothing here touches a system-wide RabbitMQ/PostgreSQL setup.
#
# Environment knobs:
#   BUSLINE_RABBIT_PORT   AMQP port (default 5672); Erlang dist port is this + 20000
#   BUSLINE_RABBIT_NODENAME  Erlang node name (default busline@localhost, or
#                         busline<port>@localhost for a non-default port so two
#                         checkouts on different ports don't clash in epmd)
#   BUSLINE_PG_PORT       PostgreSQL port (default 5432)
#   BUSLINE_PG_BINDIR     directory holding initdb/pg_ctl (default: newest
#                         /usr/lib/postgresql/*/bin, else from PATH)
#   BUSLINE_SERVICES_TIMEOUT  seconds to wait for a server to come up (default 90)
#   BUSLINE_RABBIT_TLS_DIR  a folder with ca.pem, server.pem and server.key: the node also
#                         listens for amqps:// on port+1 (tests/rabbitmq/test_tls.py)
#
# `--fast` for stop-/restart-rabbitmq uses `rabbitmqctl stop_app/start_app`: the
# Erlang VM stays up but the broker application (listeners, connections, queues)
# goes down and comes back, which from a client's point of view is a broker
# restart and takes ~1.5 s instead of ~6 s.  start-rabbitmq handles both states.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="$ROOT/.services"
TIMEOUT="${BUSLINE_SERVICES_TIMEOUT:-90}"

RABBIT_PORT="${BUSLINE_RABBIT_PORT:-5672}"
if [[ "$RABBIT_PORT" == 5672 ]]; then
    RABBIT_NODE="${BUSLINE_RABBIT_NODENAME:-busline@localhost}"
else
    RABBIT_NODE="${BUSLINE_RABBIT_NODENAME:-busline${RABBIT_PORT}@localhost}"
fi
RABBIT_DIST_PORT=$((RABBIT_PORT + 20000))
RABBIT_BIN=/usr/lib/rabbitmq/bin
RMQ_DIR="$SERVICES_DIR/rabbitmq"
RMQ_PID_FILE="$RMQ_DIR/$RABBIT_NODE.pid"
RMQ_LOG_DIR="$RMQ_DIR/log"

PG_PORT="${BUSLINE_PG_PORT:-5432}"
PG_SUPERUSER=postgres
# PG_DIR may move to /var/tmp when the PostgreSQL OS user can't reach the repo
# (see pg_setup_paths); everything else derives from it.
PG_DIR="$SERVICES_DIR/postgres"

say() { printf '[services] %s\n' "$*"; }
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

now() { date +%s; }

# kill -0 alone is not enough: a zombie (exited, not yet reaped - common in
# containers whose PID 1 doesn't reap orphans) still "exists".
pid_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)"
    [[ "$state" != Z ]]
}

# True when something accepts TCP connections on 127.0.0.1:$1.  Uses bash's
# /dev/tcp so it needs no extra tools; `timeout` guards against a stuck connect.
port_open() {
    # shellcheck disable=SC2016  # $0 is expanded by the inner bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# ---------------------------------------------------------------------------
# Package installation (fresh machines only)
# ---------------------------------------------------------------------------

TEMP_POLICY_RC=""
cleanup_policy_rc() {
    if [[ -n "$TEMP_POLICY_RC" ]]; then
        rm -f "$TEMP_POLICY_RC"
        TEMP_POLICY_RC=""
    fi
}
trap cleanup_policy_rc EXIT

# The Debian packages start their system-wide service from postinst (via
# invoke-rc.d): rabbitmq-server would grab 0.0.0.0:5672/25672 as user rabbitmq,
# postgresql would start a "15/main" cluster on 5432.  Both would clash with our
# nodes, so we install with a policy-rc.d that forbids starting services (the
# standard Debian mechanism; a container usually has one already), and then
# disable the units so they don't appear on the next boot either.
apt_install() {
    local what="$1"
    shift
    if [[ $EUID -ne 0 ]]; then
        die "$what is not installed. Install it first, e.g.:
    sudo apt-get install $* && sudo systemctl disable --now ${SYSTEM_SERVICES[*]:-}
(or run this script as root and it installs the packages itself)."
    fi
    command -v apt-get >/dev/null || die "$what is not installed and apt-get is unavailable; install: $*"
    say "installing $* with apt-get (first run only; may take a minute) ..."
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        TEMP_POLICY_RC=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# temporary: created by busline scripts/services.sh during apt-get install\nexit 101\n' \
            >"$TEMP_POLICY_RC"
        chmod 0755 "$TEMP_POLICY_RC"
    fi
    local rc=0 log
    log="$(mktemp)"
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    } >"$log" 2>&1 || rc=$?
    cleanup_policy_rc
    if [[ $rc -ne 0 ]]; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        die "apt-get install $* failed (exit $rc)"
    fi
    rm -f "$log"
}

# Stop + disable a system service that a package install may have set up.
disable_system_service() {
    local svc="$1"
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    else
        # No systemd (e.g. a container): an existing policy-rc.d may still have
        # allowed the init script to start it.
        if [[ -x "/etc/init.d/$svc" ]]; then
            "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
        if command -v update-rc.d >/dev/null; then
            update-rc.d "$svc" disable >/dev/null 2>&1 || true
        fi
    fi
}

ensure_rabbitmq_installed() {
    [[ -x "$RABBIT_BIN/rabbitmq-server" ]] && return 0
    SYSTEM_SERVICES=(rabbitmq-server)
    apt_install "RabbitMQ (Debian package rabbitmq-server)" rabbitmq-server
    disable_system_service rabbitmq-server
    [[ -x "$RABBIT_BIN/rabbitmq-server" ]] || die "rabbitmq-server installed but $RABBIT_BIN/rabbitmq-server is missing"
}

pg_find_bindir() {
    if [[ -n "${BUSLINE_PG_BINDIR:-}" ]]; then
        printf '%s\n' "$BUSLINE_PG_BINDIR"
        return 0
    fi
    local d dirs=()
    # Newest Debian-style versioned install first.
    mapfile -t dirs < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
    for d in "${dirs[@]}"; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

ensure_postgres_installed() {
    if PG_BIN="$(pg_find_bindir)"; then
        return 0
    fi
    SYSTEM_SERVICES=(postgresql)
    apt_install "PostgreSQL (Debian package postgresql)" postgresql
    disable_system_service postgresql
    PG_BIN="$(pg_find_bindir)" || die "postgresql installed but initdb/pg_ctl not found"
}

# ---------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------

# Environment for every RabbitMQ tool we run.  Why each entry:
#  - HOME: the Erlang cookie lives in $HOME/.erlang.cookie; a project-local HOME
#    makes server and CLI agree on it whoever runs the script (root included)
#    and keeps us away from /var/lib/rabbitmq's cookie.
#  - RABBITMQ_CONF_ENV_FILE: otherwise /etc/rabbitmq/rabbitmq-env.conf is
#    sourced and a system-wide setting could leak into our node.
#  - *_ERL_ARGS inet_dist_use_interface: RABBITMQ_NODE_IP_ADDRESS only binds the
#    AMQP listener; without this the Erlang distribution port listens on 0.0.0.0.
#  - ERL_EPMD_ADDRESS: an epmd started by us listens on loopback only.
#  - LANG/LC_ALL: the Elixir CLI warns (and mangles paths) under a latin1 locale.
RMQ_ENV=(
    "HOME=$RMQ_DIR/home"
    "LANG=C.UTF-8"
    "LC_ALL=C.UTF-8"
    "RABBITMQ_NODENAME=$RABBIT_NODE"
    "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1"
    "RABBITMQ_NODE_PORT=$RABBIT_PORT"
    "RABBITMQ_DIST_PORT=$RABBIT_DIST_PORT"
    "RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf"
    "RABBITMQ_CONFIG_FILE=$RMQ_DIR/$RABBIT_NODE.conf"
    "RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ_DIR/advanced.config"
    "RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins"
    "RABBITMQ_PLUGINS_EXPAND_DIR=$RMQ_DIR/plugins-expand"
    "RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia"
    "RABBITMQ_LOG_BASE=$RMQ_LOG_DIR"
    "RABBITMQ_PID_FILE=$RMQ_PID_FILE"
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    "ERL_EPMD_ADDRESS=127.0.0.1"
    "ERL_CRASH_DUMP=$RMQ_LOG_DIR/erl_crash.dump"
)

# Run a RabbitMQ CLI tool against our node.  We call /usr/lib/rabbitmq/bin/*
# directly: Debian's /usr/sbin wrappers `cd /var/lib/rabbitmq` and, as root,
# `su rabbitmq` - which would use the system cookie and fail on our files.
# fd 9 (our lock) is closed so no helper process can keep holding it.
rmq() {
    local tool="$1"
    shift
    env "${RMQ_ENV[@]}" "$RABBIT_BIN/$tool" -n "$RABBIT_NODE" "$@" 9>&-
}

rabbit_prepare_dirs() {
    mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_LOG_DIR"
    # Our own cookie (Erlang would generate one too, but only on first server
    # start; creating it up front avoids a race with the first CLI call).
    if [[ ! -s "$RMQ_DIR/home/.erlang.cookie" ]]; then
        (
            umask 077
            head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$RMQ_DIR/home/.erlang.cookie"
        )
        chmod 0400 "$RMQ_DIR/home/.erlang.cookie"
    fi
    : >"$RMQ_DIR/rabbitmq-env.conf"
    # No plugins: keeps boot fast (management etc. are not needed for tests).
    printf '[].\n' >"$RMQ_DIR/enabled_plugins"
    # One config file per node: the nodes of this folder (the single node, the cluster's, a
    # TLS node) share the Erlang cookie but not their listeners.
    cat >"$RMQ_DIR/$RABBIT_NODE.conf" <<'EOF'
# Generated by scripts/services.sh; edits are overwritten on start.
# Listener address/port come from RABBITMQ_NODE_IP_ADDRESS/RABBITMQ_NODE_PORT.
loopback_users.guest = true
log.console = false
log.file.level = info
EOF
    if [[ -n "${BUSLINE_RABBIT_TLS_DIR:-}" ]]; then
        local tls="$BUSLINE_RABBIT_TLS_DIR"
        [[ -s "$tls/ca.pem" && -s "$tls/server.pem" && -s "$tls/server.key" ]] ||
            die "BUSLINE_RABBIT_TLS_DIR=$tls needs ca.pem, server.pem and server.key"
        cat >>"$RMQ_DIR/$RABBIT_NODE.conf" <<EOF
listeners.ssl.default = 127.0.0.1:$((RABBIT_PORT + 1))
ssl_options.cacertfile = $tls/ca.pem
ssl_options.certfile = $tls/server.pem
ssl_options.keyfile = $tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
    fi
}

# PID of our node's Erlang VM if it is alive, else fail.  The pid file is
# written by the broker itself; we double-check the process really is *our*
# beam (pid reuse after a reboot/crash would otherwise fool us).
rabbit_vm_pid() {
    [[ -s "$RMQ_PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$RMQ_PID_FILE")"
    [[ -n "$pid" ]] && pid_alive "$pid" || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == beam* ]] || return 1
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia" || return 1
    printf '%s\n' "$pid"
}

# Value of environment variable $2 in process $1 (how our node was started).
rabbit_env_of() {
    tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n "s/^$2=//p" | head -n1
}

rabbit_is_running() {
    rabbit_vm_pid >/dev/null && port_open "$RABBIT_PORT"
}

RMQ_LAUNCHER=""

rabbit_fail_start() {
    local msg="$1" pid
    printf '[services] ERROR: RabbitMQ: %s\n' "$msg" >&2
    local f
    for f in "$RMQ_LOG_DIR/startup.log" "$RMQ_LOG_DIR/$RABBIT_NODE.log"; do
        if [[ -s "$f" ]]; then
            printf '[services] ---- tail of %s ----\n' "$f" >&2
            tail -n 40 "$f" >&2
        fi
    done
    # Don't leave a half-started node behind: the next `start` should begin
    # clean.  The launcher ran under setsid, so its pid is also the process
    # group of the wrapper script and the VM.
    if [[ -n "$RMQ_LAUNCHER" ]] && pid_alive "$RMQ_LAUNCHER"; then
        kill -TERM -- "-$RMQ_LAUNCHER" 2>/dev/null || true
        for _ in $(seq 50); do
            pid_alive "$RMQ_LAUNCHER" || break
            sleep 0.2
        done
        kill -KILL -- "-$RMQ_LAUNCHER" 2>/dev/null || true
    fi
    if pid="$(rabbit_vm_pid)"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    exit 1
}

rabbit_start() {
    ensure_rabbitmq_installed
    local deadline=$(($(now) + TIMEOUT)) pid
    if pid="$(rabbit_vm_pid)"; then
        local running_port
        running_port="$(rabbit_env_of "$pid" RABBITMQ_NODE_PORT)"
        if [[ -n "$running_port" && "$running_port" != "$RABBIT_PORT" ]]; then
            die "node $RABBIT_NODE already runs with AMQP port $running_port (requested $RABBIT_PORT); run '$0 stop-rabbitmq' first"
        fi
        if port_open "$RABBIT_PORT"; then
            rmq rabbitmqctl -q await_startup --timeout "$TIMEOUT" >/dev/null ||
                rabbit_fail_start "node $RABBIT_NODE (pid $pid) is up but not answering"
            say "RabbitMQ already running (node $RABBIT_NODE, pid $pid, amqp://127.0.0.1:$RABBIT_PORT)"
            return 0
        fi
        # VM up, AMQP listener down: either still booting or app stopped by
        # `stop-rabbitmq --fast`.
        if [[ "$(rmq rabbitmqctl -q eval 'rabbit:is_booting().' 2>/dev/null)" != true ]]; then
            say "starting RabbitMQ application on running node $RABBIT_NODE ..."
            rmq rabbitmqctl -q start_app >/dev/null || rabbit_fail_start "start_app failed"
        fi
    else
        rm -f "$RMQ_PID_FILE"
        # Refuse to start when somebody else owns our ports (typically a
        # system-wide rabbitmq-server): we'd fail deep inside Erlang otherwise.
        local p
        for p in "$RABBIT_PORT" "$RABBIT_DIST_PORT"; do
            if port_open "$p"; then
                die "port $p on 127.0.0.1 is already in use by another process (a system rabbitmq-server?
    e.g. 'systemctl stop rabbitmq-server' / 'rabbitmqctl stop'), or pick another port:
    BUSLINE_RABBIT_PORT=5673 $0 start"
            fi
        done
        rabbit_prepare_dirs
        say "starting RabbitMQ node $RABBIT_NODE on 127.0.0.1:$RABBIT_PORT ..."
        printf '==== %s start\n' "$(date '+%F %T')" >>"$RMQ_LOG_DIR/startup.log"
        # Run the broker's own start script in the background in a new session:
        # setsid keeps Ctrl-C in the calling terminal (e.g. during pytest) from
        # reaching the broker; stdio goes to a log so callers capturing our
        # output (subprocess pipes, $(...)) don't hang on an inherited fd.
        # Without -detached the script stays as a parent of beam and turns
        # SIGTERM into a clean shutdown; it exits when the node stops.
        (
            cd "$RMQ_DIR"
            exec env "${RMQ_ENV[@]}" nohup setsid "$RABBIT_BIN/rabbitmq-server" \
                >>"$RMQ_LOG_DIR/startup.log" 2>&1 </dev/null 9>&-
        ) &
        RMQ_LAUNCHER=$!
        until port_open "$RABBIT_PORT"; do
            if ! pid_alive "$RMQ_LAUNCHER" && ! rabbit_vm_pid >/dev/null; then
                wait "$RMQ_LAUNCHER" 2>/dev/null || true
                rabbit_fail_start "the node exited during boot"
            fi
            [[ $(now) -lt $deadline ]] || rabbit_fail_start "not up after ${TIMEOUT}s"
            sleep 0.2
        done
    fi
    # The listener opens near the end of boot; await_startup confirms the
    # broker application itself reports "started" (and that the CLI/cookie work).
    local left=$((deadline - $(now)))
    ((left > 5)) || left=5
    rmq rabbitmqctl -q await_startup --timeout "$left" >/dev/null ||
        rabbit_fail_start "node did not finish booting in time"
    port_open "$RABBIT_PORT" || rabbit_fail_start "AMQP port $RABBIT_PORT not open after boot"
    say "RabbitMQ ready (node $RABBIT_NODE, pid $(rabbit_vm_pid || echo '?'), amqp://127.0.0.1:$RABBIT_PORT)"
}

# $1 = "full" (shut the VM down) or "fast" (stop_app only).
rabbit_stop() {
    local mode="${1:-full}" pid
    if ! pid="$(rabbit_vm_pid)"; then
        rm -f "$RMQ_PID_FILE"
        say "RabbitMQ not running"
        return 0
    fi
    if [[ "$mode" == fast ]]; then
        say "stopping RabbitMQ application (VM stays up) ..."
        rmq rabbitmqctl -q stop_app >/dev/null || die "rabbitmqctl stop_app failed"
        return 0
    fi
    say "stopping RabbitMQ node $RABBIT_NODE (pid $pid) ..."
    # `shutdown` stops the broker gracefully and waits for the OS process to go.
    if ! rmq rabbitmqctl -q shutdown --timeout 60 >/dev/null 2>&1; then
        warn "rabbitmqctl shutdown failed; sending SIGTERM to pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
    fi
    local deadline=$(($(now) + 30))
    while pid_alive "$pid"; do
        if [[ $(now) -ge $deadline ]]; then
            warn "pid $pid still alive after 30s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$RMQ_PID_FILE"
    say "RabbitMQ stopped"
}

# epmd is started on demand by the first Erlang node and outlives it.  After a
# full stop remove it again - but only when no node is registered any more
# (`epmd -kill` refuses otherwise, so another user's node is never affected).
epmd_cleanup() {
    command -v epmd >/dev/null || return 0
    local names
    names="$(env ERL_EPMD_ADDRESS=127.0.0.1 epmd -names 2>/dev/null || true)"
    if [[ -n "$names" ]] && ! grep -q '^name ' <<<"$names"; then
        epmd -kill >/dev/null 2>&1 || true
    fi
}

rabbit_status() {
    local pid
    if pid="$(rabbit_vm_pid)"; then
        if port_open "$RABBIT_PORT"; then
            say "rabbitmq: running (node $RABBIT_NODE, pid $pid, amqp://127.0.0.1:$RABBIT_PORT, data $RMQ_DIR)"
            return 0
        fi
        say "rabbitmq: node $RABBIT_NODE up (pid $pid) but AMQP listener closed (app stopped or booting)"
        return 1
    fi
    say "rabbitmq: stopped"
    return 1
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

PG_BIN=""
PG_OS_USER=""

# Run a command as the OS user that owns the cluster.  PostgreSQL refuses to
# run as root, so as root we use the `postgres` system user (or create a
# dedicated one); as a normal user we run as ourselves.  fd 9 (our lock) is
# closed so the long-lived postmaster doesn't inherit it.
as_pg() {
    # cd /: the OS user may not be allowed into the caller's cwd (initdb and
    # pg_ctl fail on an unreadable cwd); all paths we pass are absolute.
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@" 9>&-)
    else
        (cd / && "$@" 9>&-)
    fi
}

pg_setup_user() {
    if [[ $EUID -ne 0 ]]; then
        PG_OS_USER="$(id -un)"
        return 0
    fi
    if id postgres >/dev/null 2>&1; then
        PG_OS_USER=postgres
    else
        PG_OS_USER=busline-pg
        if ! id "$PG_OS_USER" >/dev/null 2>&1; then
            useradd --system --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$PG_OS_USER"
        fi
    fi
}

# The cluster's OS user must be able to reach its data directory.  A checkout
# under e.g. /root (mode 700) is not reachable by `postgres`; rather than
# loosening permissions on someone's home we then keep the cluster under
# /var/tmp, keyed by the repo path so stop/status find it again.
pg_setup_paths() {
    if [[ $EUID -eq 0 ]]; then
        mkdir -p "$SERVICES_DIR"
        if ! runuser -u "$PG_OS_USER" -- test -x "$SERVICES_DIR"; then
            local key
            key="$(printf '%s' "$ROOT" | md5sum | cut -c1-10)"
            PG_DIR="/var/tmp/busline-pg-$key"
            # Leave a pointer where people will look for it.
            if [[ -L "$SERVICES_DIR/postgres" || ! -e "$SERVICES_DIR/postgres" ]]; then
                ln -sfn "$PG_DIR" "$SERVICES_DIR/postgres"
            fi
        fi
    fi
    PG_DATA="$PG_DIR/data"
    PG_RUN="$PG_DIR/run"
    PG_LOG="$PG_DIR/log/postgres.log"
}

pg_init() {
    pg_setup_user
    pg_setup_paths
}

# Port our running cluster listens on (line 4 of postmaster.pid).
pg_running_port() {
    as_pg sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null
}

# Postmaster pid if our cluster runs, else fail.
pg_pid() {
    [[ -n "$PG_BIN" && -f "$PG_DATA/PG_VERSION" ]] || return 1
    local out
    out="$(as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status 2>/dev/null)" || return 1
    sed -n 's/.*(PID: \([0-9]*\)).*/\1/p' <<<"$out" | head -n1
}

pg_write_runtime_conf() {
    # Per-start settings live in an included file so a changed BUSLINE_PG_PORT
    # needs no re-initdb, and quoting is safe for paths with spaces.
    local sockdirs="'$PG_RUN'"
    # Unix socket paths are limited to ~107 bytes; fall back to TCP only.
    if (($(printf '%s/.s.PGSQL.%s' "$PG_RUN" "$PG_PORT" | wc -c) > 100)); then
        warn "socket dir path too long for a Unix socket; PostgreSQL listens on TCP only"
        sockdirs="''"
    fi
    cat >"$PG_DATA/busline-runtime.conf" <<EOF
# Generated by scripts/services.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = $sockdirs
max_connections = 200
logging_collector = off
log_min_messages = warning
EOF
    chown "$PG_OS_USER" "$PG_DATA/busline-runtime.conf"
}

pg_initdb() {
    mkdir -p "$PG_DIR/log" "$PG_RUN"
    if [[ $EUID -eq 0 ]]; then
        chown "$PG_OS_USER" "$PG_DIR" "$PG_DIR/log" "$PG_RUN"
    fi
    if [[ -f "$PG_DATA/PG_VERSION" ]]; then
        return 0
    fi
    say "initdb: creating PostgreSQL cluster in $PG_DATA ..."
    rm -rf "$PG_DATA"
    mkdir -p "$PG_DATA"
    if [[ $EUID -eq 0 ]]; then
        chown "$PG_OS_USER" "$PG_DATA"
    fi
    chmod 0700 "$PG_DATA"
    # trust auth: the server only listens on loopback and is for tests.
    # --no-sync: a throwaway test cluster doesn't need initdb's fsyncs.
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth=trust \
        -E UTF8 --locale=C --no-sync >"$PG_DIR/log/initdb.log" 2>&1; then
        cat "$PG_DIR/log/initdb.log" >&2
        rm -rf "$PG_DATA"
        die "initdb failed"
    fi
    printf "\n# busline: per-start settings (port, listen address, socket dir)\ninclude_if_exists 'busline-runtime.conf'\n" \
        >>"$PG_DATA/postgresql.conf"
}

pg_provision() {
    # Idempotent: create role and database only when missing (\gexec runs the
    # generated statement, which is empty when the object exists).
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres \
        >/dev/null 9>&- <<'EOF'
SELECT 'CREATE ROLE busline LOGIN CREATEDB PASSWORD ''busline'''
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'busline') \gexec
SELECT 'CREATE DATABASE busline OWNER busline'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'busline') \gexec
EOF
}

pg_fail_start() {
    printf '[services] ERROR: PostgreSQL: %s\n' "$1" >&2
    if [[ -s "$PG_LOG" ]]; then
        printf '[services] ---- tail of %s ----\n' "$PG_LOG" >&2
        tail -n 40 "$PG_LOG" >&2
    fi
    exit 1
}

pg_start() {
    ensure_postgres_installed
    pg_init
    local pid deadline=$(($(now) + TIMEOUT))
    if pid="$(pg_pid)" && [[ -n "$pid" ]]; then
        local running_port
        running_port="$(pg_running_port)"
        if [[ -n "$running_port" && "$running_port" != "$PG_PORT" ]]; then
            die "PostgreSQL already runs on port $running_port (requested $PG_PORT); run '$0 stop-postgres' first"
        fi
        say "PostgreSQL already running (pid $pid, 127.0.0.1:$PG_PORT)"
    else
        if port_open "$PG_PORT"; then
            die "port $PG_PORT on 127.0.0.1 is already in use by another process (a system PostgreSQL?
    e.g. 'pg_ctlcluster 15 main stop' / 'systemctl stop postgresql'), or pick another port:
    BUSLINE_PG_PORT=5433 $0 start"
        fi
        pg_initdb
        pg_write_runtime_conf
        say "starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT ..."
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" -s start ||
            pg_fail_start "pg_ctl start failed"
    fi
    # -U/-d only keep the server log free of 'role "root" does not exist'.
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -t 2; do
        [[ $(now) -lt $deadline ]] || pg_fail_start "not accepting connections after ${TIMEOUT}s"
        sleep 0.2
    done
    pg_provision || pg_fail_start "creating role/database busline failed"
    say "PostgreSQL ready (postgresql://busline:busline@127.0.0.1:$PG_PORT/busline, data $PG_DATA)"
}

pg_stop() {
    PG_BIN="$(pg_find_bindir)" || {
        say "PostgreSQL not installed"
        return 0
    }
    pg_init
    local pid
    if ! pid="$(pg_pid)" || [[ -z "$pid" ]]; then
        say "PostgreSQL not running"
        return 0
    fi
    say "stopping PostgreSQL (pid $pid) ..."
    # "fast": roll back open transactions and disconnect clients right away
    # (the default "smart" mode would wait for test connections to go away).
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop ||
        die "pg_ctl stop failed (see $PG_LOG)"
    say "PostgreSQL stopped"
}

pg_status() {
    local pid
    if PG_BIN="$(pg_find_bindir)"; then
        pg_init
        if pid="$(pg_pid)" && [[ -n "$pid" ]]; then
            say "postgres: running (pid $pid, postgresql://127.0.0.1:$PG_PORT, data $PG_DATA)"
            return 0
        fi
    fi
    say "postgres: stopped"
    return 1
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

# Serialize mutating commands (concurrent `start`s from parallel test runs
# would otherwise launch two nodes on the same data).
take_lock() {
    mkdir -p "$SERVICES_DIR"
    exec 9>"$SERVICES_DIR/.lock"
    if ! flock -w 300 9; then
        die "another scripts/services.sh is still running (lock $SERVICES_DIR/.lock)"
    fi
}

print_env() {
    printf 'export BUSLINE_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:%s/\n' "$RABBIT_PORT"
    printf 'export BUSLINE_TEST_PG_URL=postgresql://busline:busline@127.0.0.1:%s/busline\n' "$PG_PORT"
}

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

# The cluster's AMQP ports; each node is `busline<port>@localhost`, with its data beside the
# single node's (one Erlang cookie for all, which is what lets them cluster).
CLUSTER_PORTS=(5681 5682 5683)

# Start the three nodes (each through this script, so each takes the lock and its own checks),
# then join the second and third to the first unless they already are members.
cluster_start() {
    local port first="busline${CLUSTER_PORTS[0]}@localhost"
    for port in "${CLUSTER_PORTS[@]}"; do
        BUSLINE_RABBIT_PORT="$port" "$0" start-rabbitmq
    done
    for port in "${CLUSTER_PORTS[@]:1}"; do
        local status
        status="$(BUSLINE_RABBIT_PORT="$port" "$0" rabbitmqctl -q cluster_status --formatter json)" ||
            die "cluster_status of busline${port}@localhost failed"
        if grep -q "\"$first\"" <<<"$status"; then
            continue
        fi
        say "joining busline${port}@localhost to $first ..."
        BUSLINE_RABBIT_PORT="$port" "$0" rabbitmqctl -q stop_app >/dev/null
        BUSLINE_RABBIT_PORT="$port" "$0" rabbitmqctl -q reset >/dev/null
        BUSLINE_RABBIT_PORT="$port" "$0" rabbitmqctl -q join_cluster "$first" >/dev/null ||
            die "busline${port}@localhost could not join $first"
        BUSLINE_RABBIT_PORT="$port" "$0" rabbitmqctl -q start_app >/dev/null
    done
    say "RabbitMQ cluster of ${#CLUSTER_PORTS[@]} nodes ready: $(cluster_urls)"
}

cluster_stop() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        BUSLINE_RABBIT_PORT="$port" "$0" stop-rabbitmq
    done
}

cluster_urls() {
    local port urls=""
    for port in "${CLUSTER_PORTS[@]}"; do
        urls+="${urls:+,}amqp://guest:guest@127.0.0.1:$port/"
    done
    printf '%s\n' "$urls"
}

fast_flag() {
    case "${1:-}" in
    "") echo full ;;
    --fast) echo fast ;;
    *) die "unknown option: $1" ;;
    esac
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
    start)
        take_lock
        local t0
        t0=$(now)
        rabbit_start
        pg_start
        say "all services up ($(($(now) - t0))s)"
        ;;
    stop)
        take_lock
        rabbit_stop full
        epmd_cleanup
        pg_stop
        ;;
    restart)
        take_lock
        rabbit_stop full
        pg_stop
        rabbit_start
        pg_start
        ;;
    status)
        local rc=0
        rabbit_status || rc=1
        pg_status || rc=1
        return "$rc"
        ;;
    env) print_env ;;
    start-rabbitmq)
        take_lock
        rabbit_start
        ;;
    stop-rabbitmq)
        local mode
        mode="$(fast_flag "${1:-}")"
        take_lock
        rabbit_stop "$mode"
        if [[ "$mode" == full ]]; then
            epmd_cleanup
        fi
        ;;
    restart-rabbitmq)
        local mode
        mode="$(fast_flag "${1:-}")"
        take_lock
        rabbit_stop "$mode"
        rabbit_start
        ;;
    start-postgres)
        take_lock
        pg_start
        ;;
    stop-postgres)
        take_lock
        pg_stop
        ;;
    is-running)
        case "${1:-}" in
        rabbitmq) rabbit_is_running ;;
        postgres)
            PG_BIN="$(pg_find_bindir)" || return 1
            pg_init
            local pid
            pid="$(pg_pid)" && [[ -n "$pid" ]]
            ;;
        *) die "usage: $0 is-running rabbitmq|postgres" ;;
        esac
        ;;
    rabbitmqctl | rabbitmq-diagnostics | rabbitmq-queues | rabbitmq-plugins)
        # Passthrough to the CLI tool, aimed at our node with our cookie, e.g.
        # `scripts/services.sh rabbitmqctl add_vhost t-1` (each call boots a
        # small Erlang VM: ~0.4 s).  No lock: read-mostly and used by tests.
        rmq "$cmd" "$@"
        ;;
    add-vhosts | delete-vhosts)
        # Several vhosts in ONE CLI call (a VM boot is most of rabbitmqctl's
        # ~0.5 s); add-vhosts also grants guest full permissions, as tests
        # need; delete-vhosts ignores names that do not exist.  Both use
        # the broker's internal API (checked on 3.10).
        (($# > 0)) || die "usage: $0 $cmd NAME..."
        local v list=""
        for v in "$@"; do
            [[ "$v" =~ ^[A-Za-z0-9._-]+$ ]] || die "invalid vhost name: $v (allowed: A-Z a-z 0-9 . _ -)"
            list+="${list:+,}<<\"$v\">>"
        done
        local expr
        if [[ "$cmd" == add-vhosts ]]; then
            expr="[begin ok = rabbit_vhost:add(V, <<\"busline-tests\">>), ok = rabbit_auth_backend_internal:set_permissions(<<\"guest\">>, V, <<\".*\">>, <<\".*\">>, <<\".*\">>, <<\"busline-tests\">>) end || V <- [$list]], ok."
        else
            expr="[catch rabbit_vhost:delete(V, <<\"busline-tests\">>) || V <- [$list]], ok."
        fi
        local out
        out="$(rmq rabbitmqctl -q eval "$expr" 2>&1)" || die "$cmd failed: $out"
        # The broker may log a line of its own first (deleting a vhost whose storage
        # directory never got created logs an ENOENT warning): the result is the last line.
        [[ "${out##*$'\n'}" == ok ]] || die "$cmd failed: $out"
        ;;
    start-cluster) cluster_start ;;
    stop-cluster) cluster_stop ;;
    cluster-env) printf 'export BUSLINE_TEST_CLUSTER_URLS=%s\n' "$(cluster_urls)" ;;
    -h | --help | help) usage ;;
    *) usage ;;
    esac
}

main "$@"
