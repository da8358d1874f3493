#!/usr/bin/env bash
# benches/setup.sh — make sure the benchmark tools are installed.
#
# Idempotent: if wrk, nginx, lighttpd and python3 are already on PATH this
# does nothing. Otherwise it installs the missing Debian packages with
# `apt-get install -y` (running `apt-get update` first, once, only when
# something is missing). If another apt/dpkg run is in progress (e.g. a
# provisioning install logging to /tmp/apt.log) we wait for it instead of
# failing on the dpkg lock.
#
# Exit status: 0 when every tool is available, non-zero (with a message
# naming the tool) otherwise.
set -euo pipefail

# nginx and lighttpd live in /usr/sbin, which is not always on a user PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

LOCK_WAIT_SECONDS="${LOCK_WAIT_SECONDS:-900}"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# tool -> candidate Debian packages (first one that installs wins)
declare -A PKGS=(
  [wrk]="wrk"
  [nginx]="nginx-light nginx"
  [lighttpd]="lighttpd"
  [python3]="python3"
)
TOOLS=(wrk nginx lighttpd python3)

missing=()
for t in "${TOOLS[@]}"; do
  if command -v "$t" >/dev/null 2>&1; then
    log "ok: $t -> $(command -v "$t")"
  else
    missing+=("$t")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "all tools present"
  exit 0
fi
log "missing: ${missing[*]}"

command -v apt-get >/dev/null 2>&1 || die "apt-get not available; install ${missing[*]} manually"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else die "need root (or sudo) to install ${missing[*]}"; fi
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
    [ "$waited" -lt "$LOCK_WAIT_SECONDS" ] || die "apt/dpkg still busy after ${LOCK_WAIT_SECONDS}s"
  done
}

# apt >= 1.9.11 can also wait on the dpkg frontend lock itself (covers races
# where another install starts between our check and our call).
APT=("${SUDO[@]}" apt-get -y -q -o "DPkg::Lock::Timeout=${LOCK_WAIT_SECONDS}")

wait_for_apt
# The background install may just have provided what we need: re-check.
still=()
for t in "${missing[@]}"; do command -v "$t" >/dev/null 2>&1 || still+=("$t"); done
if [ "${#still[@]}" -eq 0 ]; then
  log "all tools present (after waiting for apt)"
  exit 0
fi

log "apt-get update"
"${APT[@]}" update >&2 || die "apt-get update failed"

for t in "${still[@]}"; do
  installed=no
  for pkg in ${PKGS[$t]}; do
    log "installing $pkg (for $t)"
    if "${APT[@]}" install --no-install-recommends "$pkg" >&2 && command -v "$t" >/dev/null 2>&1; then
      installed=yes
      break
    fi
    log "package $pkg did not provide $t"
  done
  [ "$installed" = yes ] || die "could not install $t (tried: ${PKGS[$t]})"
  log "ok: $t -> $(command -v "$t")"
done
log "all tools present"
