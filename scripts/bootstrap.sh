#!/usr/bin/env bash
# Create .venv (if missing) and install busline into it, editable, with the
# `dev` extras (`--bench`: also the `bench` extras).  Idempotent and quiet; when
# nothing changed since the last successful run it returns in milliseconds.
#
#   scripts/bootstrap.sh [--bench]
#
# Environment: BUSLINE_PYTHON  interpreter used to create the venv (default python3)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${BUSLINE_PYTHON:-python3}"

say() { printf '[bootstrap] %s\n' "$*"; }
die() {
    printf '[bootstrap] ERROR: %s\n' "$*" >&2
    exit 1
}

extras=dev
case "${1:-}" in
"") ;;
--bench) extras=dev,bench ;;
*) die "usage: $0 [--bench]" ;;
esac

# A stamp per extras set, touched after a successful pip install.  pip only
# re-runs when pyproject.toml (the dependency list) is newer than the stamp.
stamp_for() { printf '%s/.busline-bootstrap-%s' "$VENV" "${1//,/-}"; }

is_fresh() {
    local stamp
    stamp="$(stamp_for "$1")"
    [[ -f "$stamp" && "$stamp" -nt "$ROOT/pyproject.toml" ]] || return 1
    # The venv may have been rebuilt or busline uninstalled behind our back;
    # find_spec doesn't import (execute) the package, so this stays cheap.
    "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("busline") is None)' \
        2>/dev/null
}

# The sample shop's page test drives Debian's chromium through Playwright (a browser download
# does not work everywhere, so `playwright install` is never used).  Install it like
# services.sh installs rabbitmq-server: when missing and running as root; otherwise that test
# skips (or fails with CI=true) and says how to get it.
ensure_chromium() {
    [[ -x /usr/bin/chromium ]] && return 0
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing chromium (apt-get) for the sample shop's browser test ..."
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
            say "WARNING: apt-get install chromium failed; the browser test will skip"
    fi
}
ensure_chromium

# Fast path: nothing to do.  (--bench also covers dev.)
if is_fresh "$extras" || { [[ "$extras" == dev ]] && is_fresh dev,bench; }; then
    exit 0
fi

mkdir -p "$VENV"
# Two bootstraps at once (e.g. scripts/test and scripts/run started together)
# would race inside pip; serialize them.
exec 9>"$VENV/.busline-bootstrap.lock"
flock -w 600 9 || die "another bootstrap is still running"
if is_fresh "$extras"; then
    exit 0 # the other run did the work while we waited
fi

# A venv whose base interpreter has gone (e.g. a removed pyenv version) can't
# be repaired by pip; rebuild it.
if [[ -e "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    say "existing .venv is broken; recreating it"
    find "$VENV" -mindepth 1 -maxdepth 1 ! -name .busline-bootstrap.lock -exec rm -rf {} +
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    command -v "$PY" >/dev/null || die "$PY not found; install Python >= 3.11 (Debian: apt-get install python3 python3-venv)"
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PY is $("$PY" -V 2>&1); busline needs Python >= 3.11 (set BUSLINE_PYTHON=/path/to/python3.11)"
    say "creating .venv with $("$PY" -V 2>&1)"
    if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian ships venv/ensurepip separately (python3-venv).
        if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
            say "installing python3-venv (apt-get) ..."
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
            find "$VENV" -mindepth 1 -maxdepth 1 ! -name .busline-bootstrap.lock -exec rm -rf {} +
            "$PY" -m venv "$VENV" || die "python -m venv failed"
        else
            die "'$PY -m venv' failed; on Debian/Ubuntu install it with: sudo apt-get install python3-venv"
        fi
    fi
fi

say "installing busline[$extras] into .venv (pip, editable) ..."
log="$VENV/.busline-bootstrap.log"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "${ROOT}[${extras}]" >"$log" 2>&1; then
    cat "$log" >&2
    die "pip install failed (log: $log)"
fi
touch "$(stamp_for "$extras")"
say "done"
