#!/usr/bin/env bash
# benches/setup.sh (make bench-deps) — install what the benchmarks drive.
#
# Debian packages: wrk (load), nginx, lighttpd (+ lighttpd-mod-deflate), h2o (the peers), strace and
# valgrind (syscalls and instructions per request), python3; optional:
# linux-perf (its syscall tracepoints count syscalls where they work, else
# strace does; its instruction counter is used if it works on this machine).
# Python: matplotlib (the charts) via pip, else Debian's python3-matplotlib.
#
# Idempotent: anything already on PATH (or importable) is left alone, and
# `apt-get update` runs once, only when something is missing. If another
# apt/dpkg run is in progress (e.g. a provisioning install logging to
# /tmp/apt.log) we wait for it instead of failing on the dpkg lock. None of
# the servers is started or enabled: the harnesses run them from their own
# configs in a temp dir.
#
# Exit status: 0 when every required tool is available, 1 (naming the tools)
# otherwise. The harnesses also cope with a missing peer: they skip it and
# say so in their report.
set -euo pipefail

# nginx, lighttpd and h2o live in /usr/sbin, which is not always on a user PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

LOCK_WAIT_SECONDS="${LOCK_WAIT_SECONDS:-900}"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }

# tool -> candidate Debian packages (first one that installs wins)
declare -A PKGS=(
  [wrk]="wrk"
  [nginx]="nginx-light nginx"
  [lighttpd]="lighttpd"
  [h2o]="h2o"
  [strace]="strace"
  [valgrind]="valgrind"
  [python3]="python3"
  [perf]="linux-perf"
)
REQUIRED=(wrk nginx lighttpd h2o strace valgrind python3)
OPTIONAL=(perf)

missing=()
for t in "${REQUIRED[@]}" "${OPTIONAL[@]}"; do
  if command -v "$t" >/dev/null 2>&1; then
    log "ok: $t -> $(command -v "$t")"
  else
    missing+=("$t")
  fi
done

have_matplotlib() { "$PYTHON" -c 'import matplotlib' >/dev/null 2>&1; }

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else SUDO=(); fi
else
  SUDO=()
fi

# Wait for any apt/dpkg process that is already running (background install).
wait_for_apt() {
  local waited=0
  while pgrep -x 'apt-get|apt|dpkg|unattended-upgr' >/dev/null 2>&1; do
    if [ $((waited % 30)) -eq 0 ]; then
      log "another apt/dpkg process is running; waiting (${waited}s so far)"
      [ -r /tmp/apt.log ] && tail -n 2 /tmp/apt.log | sed 's/^/[setup]   apt.log: /' >&2
    fi
    sleep 5
    waited=$((waited + 5))
    if [ "$waited" -ge "$LOCK_WAIT_SECONDS" ]; then
      log "apt/dpkg still busy after ${LOCK_WAIT_SECONDS}s"
      return 1
    fi
  done
}

# apt >= 1.9.11 can also wait on the dpkg frontend lock itself (covers races
# where another install starts between our check and our call).
APT=("${SUDO[@]}" apt-get -y -q -o "DPkg::Lock::Timeout=${LOCK_WAIT_SECONDS}")
apt_updated=no
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { log "apt-get not available"; return 1; }
  if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
    log "need root (or sudo) to install $*"; return 1
  fi
  wait_for_apt || return 1
  if [ "$apt_updated" = no ]; then
    log "apt-get update"
    "${APT[@]}" update >&2 || { log "apt-get update failed"; return 1; }
    apt_updated=yes
  fi
  log "apt-get install $*"
  "${APT[@]}" install --no-install-recommends "$@" >&2
}

failed=()
for t in "${missing[@]}"; do
  command -v "$t" >/dev/null 2>&1 && continue  # a background install may have provided it
  installed=no
  for pkg in ${PKGS[$t]}; do
    if apt_install "$pkg" && command -v "$t" >/dev/null 2>&1; then
      installed=yes
      break
    fi
    log "package $pkg did not provide $t"
  done
  if [ "$installed" = yes ]; then
    log "ok: $t -> $(command -v "$t")"
  else
    failed+=("$t")
  fi
done

# lighttpd's mod_deflate (the compress section) is its own Debian package.
if command -v lighttpd >/dev/null 2>&1 && ! ls /usr/lib/lighttpd/mod_deflate.so >/dev/null 2>&1; then
  apt_install lighttpd-mod-deflate || log "optional, not installed: lighttpd-mod-deflate"
fi

if have_matplotlib; then
  log "ok: matplotlib ($("$PYTHON" -c 'import matplotlib; print(matplotlib.__version__)'))"
else
  log "installing matplotlib for $PYTHON"
  # pip first (a pyenv/venv python); Debian's package for its own python3,
  # whose pip refuses to touch the system site-packages (PEP 668).
  if ! "$PYTHON" -m pip install --quiet matplotlib >&2 || ! have_matplotlib; then
    apt_install python3-matplotlib || true
  fi
  if have_matplotlib; then log "ok: matplotlib"; else failed+=(matplotlib); fi
fi

optional_failed=()
required_failed=()
for t in "${failed[@]}"; do
  if [[ " ${OPTIONAL[*]} " == *" $t "* ]]; then optional_failed+=("$t"); else required_failed+=("$t"); fi
done
[ "${#optional_failed[@]}" -eq 0 ] || log "optional, not installed: ${optional_failed[*]}"
if [ "${#required_failed[@]}" -ne 0 ]; then
  log "ERROR: could not install: ${required_failed[*]}"
  exit 1
fi
log "all tools present"
