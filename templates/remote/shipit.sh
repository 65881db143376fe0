# shellcheck shell=sh
# shipit's remote shell: one function per step, POSIX sh.
#
# shipit sends this file, followed by a preamble of quoted variables and one-line calls, to a
# host as one script (one SSH exec). Nothing here is generated: every value comes in through the
# preamble's variables (quoted by one Rust function, `plan::quote`) or as quoted arguments.
#
# Variables the preamble always sets (empty when unused):
#   D deploy_to   ID release id   SHA archive sha256   TOKEN lock token   OP deploy|rollback|prune
#   DEPLOYER REVISION DJANGO_SETTINGS_MODULE BREAK (none|dead|force)
#   PY INSTALLER REQ MANAGE                      python, uv|pip|auto, paths inside the release
#   APP MANAGER                                  process manager (APP=1 when managed;
#                                                supervisor|systemd|auto, see systemd.sh)
#   CTL CONFD PROGRAM PROGRAM_GLOB               supervisor
#   SYSTEMCTL JOURNALCTL SCOPE UNIT_PREFIX       systemd (SCOPE: system|user)
#   NGINX SITE NGINX_TEST NGINX_RELOAD           nginx (NGINX=1 when managed)
#   HEALTH_PATH HEALTH_HOST HEALTH_STATUS HEALTH_TIMEOUT HEALTH_RETRIES
#   UNAPPLIED (1 once a rollback unapplied migrations on this host)  APP_USER (empty: deploy user)
#   TARGET HOSTS                                 the target's name, its hosts (space-separated)
#   LOCK_WAIT (seconds step_lock waits for a live lock)  LOCK_MESSAGE (why `shipit lock` holds it)
#   WEB (1 when this host serves the web role: nginx site and web app server)
# shellcheck disable=SC2154

# ---------------------------------------------------------------------------------------------
# The script runtime. Before and after each step the script prints a marker line carrying a
# per-run nonce (SHIPIT_NONCE): that is how shipit shows progress and timings and knows which
# step failed, without a step's own output being able to forge a marker. Each step runs in a
# subshell with `set -e`; when one fails, the cleanup function of the current part of the script
# (SHIPIT_CLEANUP) runs and the script exits with the step's status.

shipit_mark() { printf '%s%s %s\n' '@@shipit:' "$SHIPIT_NONCE" "$*"; }
shipit_fact() { shipit_mark fact "$1" "$2"; }
shipit_on_failure() { "$SHIPIT_CLEANUP"; }

# shipit_step ID FUNCTION [ARG]...
shipit_step() {
  SHIPIT_STEP=$1
  shift
  shipit_mark begin "$SHIPIT_STEP"
  (
    set -e
    "$@"
  )
  SHIPIT_STATUS=$?
  if [ "$SHIPIT_STATUS" -ne 0 ]; then
    shipit_mark fail "$SHIPIT_STEP" "$SHIPIT_STATUS"
    SHIPIT_FAILED_STEP=$SHIPIT_STEP
    shipit_on_failure
    exit "$SHIPIT_STATUS"
  fi
  shipit_mark end "$SHIPIT_STEP"
}

# The end of the first part of a script that goes on with what shipit makes of its facts (one
# host: begin, then prepare and switch, in one exec). It asks for the rest (mark `next`), which
# comes on stdin as its size in bytes on a line and then that many bytes of calls, and runs it
# here. Size 0 means stop: the first part's cleanup runs (a begin's gives the lock back).
shipit_continue() {
  SHIPIT_STEP="continue"
  shipit_mark next
  size=
  read -r size <&3 || true
  case $size in
    '' | 0 | *[!0-9]*)
      echo "stopped: shipit sent nothing more to run"
      shipit_fact stopped 1
      shipit_on_failure
      exit 1
      ;;
  esac
  rest=$(head -c "$size" <&3)
  eval "$rest"
}

# Every step ran: losing the connection now must not undo anything.
shipit_done() {
  SHIPIT_STEP="done"
  shipit_mark "done" ok
}

# A cut connection shows up as SIGPIPE at the next write (or SIGHUP/SIGTERM from sshd): undo
# what the interrupted step started, quietly, since nobody is listening any more.
shipit_interrupted() {
  trap '' PIPE HUP TERM
  [ "$SHIPIT_STEP" = "done" ] && exit 0
  SHIPIT_FAILED_STEP=$SHIPIT_STEP
  shipit_on_failure >/dev/null 2>&1
  exit 129
}

# The host's umask is kept for shared data; steps that write what nginx serves set their own.
shipit_start() {
  exec 2>&1
  set -u
  SHIPIT_STEP=start
  SHIPIT_FAILED_STEP=
  trap shipit_interrupted PIPE HUP TERM
}

# ---------------------------------------------------------------------------------------------
# Helpers every step may use.

shipit_init() {
  R="$D/releases/$ID"
  LOCK="$D/.shipit/lock"
  SITE_BACKUP="$D/.shipit/nginx-site.previous"
  SITE_CHANGED="$D/.shipit/nginx-site.changed"
  PROGRAM_CONF="$CONFD/$PROGRAM.conf"
  ONCE_CONF="$CONFD/$PROGRAM.once.conf"
  ONCE_GLOB="${PROGRAM_GLOB%.conf}.once.conf"
  PREVIOUS=$(readlink "$D/current" 2>/dev/null || true)
  shipit_systemd_init
  SHIPIT_RELEASE=$ID
  export DJANGO_SETTINGS_MODULE SHIPIT_RELEASE
}

shipit_archive() { printf '%s/.shipit/archives/%s.tar.gz' "$D" "$SHA"; }

# One tab-separated line per operation in $D/.shipit/log: time, who, what, release, revision,
# outcome.
shipit_log() {
  (
    umask 077
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$DEPLOYER" "$OP" "$ID" \
      "$REVISION" "$1" >> "$D/.shipit/log"
  )
}

# Exports the app's environment of the release in directory $1 (its .shipit/env), as every
# manage.py step, hook and app server of that release sees it.
shipit_load_env() {
  if [ -f "$1/.shipit/env" ]; then
    set -a
    # The file is written by step_env from the target's env and secrets.
    # shellcheck disable=SC1090,SC1091
    . "$1/.shipit/env"
    set +a
  fi
}

shipit_state() {
  if [ -d "$R/.shipit" ]; then printf '%s\n' "$1" > "$R/.shipit/state"; fi
  true
}

shipit_ctl() { eval "$CTL" '"$@"'; }

# The program (group) names a supervisor config FILE defines, one a line.
shipit_programs() { sed -n 's/^\[program:\(.*\)\]$/\1/p' "$1" 2>/dev/null; }

# Releases whose programs are installed in the process manager (running, or meant to).
shipit_installed_releases() {
  [ "$APP" = 1 ] || return 0
  if [ "$MANAGER" = systemd ]; then
    shipit_systemd_installed_releases
    return 0
  fi
  # The globs are globs on purpose.
  # shellcheck disable=SC2086
  for conf in "$CONFD"/$PROGRAM_GLOB "$CONFD"/$ONCE_GLOB; do
    [ -e "$conf" ] || continue
    name=${conf##*/}
    name=${name%.conf}
    name=${name%.once}
    printf '%s\n' "${name##*.}"
  done
}

# ---------------------------------------------------------------------------------------------
# The lock: a directory made with mkdir (atomic), holding who took it and which process holds it.
# The holder is the nearest ancestor of this script that is not a shell: the SSH session (the
# same process for every script of one connection) or, locally, shipit itself. While it lives,
# the deploy that took the lock is running.

# The start time of process $1 (its identity, with the pid), or nothing when it is gone. A
# zombie is gone: an orphan's waits for whoever reaps it (PID 1 in some containers reaps seldom).
shipit_starttime() {
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '$1 != "Z" && $1 != "X" { print $20 }'
}

shipit_holder() {
  pid=$PPID
  while [ "${pid:-1}" -gt 1 ]; do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || break
    case "$comm" in
      sh|dash|bash|zsh|ksh|mksh|busybox|sudo|su|env) ;;
      *) printf '%s %s' "$pid" "$(shipit_starttime "$pid")"; return 0 ;;
    esac
    pid=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f2)
  done
  printf '%s %s' "$PPID" "$(shipit_starttime "$PPID")"
}

# shipit_value NAME FILE: the value of FILE's first NAME=VALUE line, or nothing; read by the
# shell, without a process, as many steps ask for one.
shipit_value() {
  [ -f "$2" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      "$1="*)
        printf '%s\n' "${line#"$1"=}"
        return 0
        ;;
    esac
  done < "$2"
}

shipit_lock_field() { shipit_value "$1" "$LOCK/info"; }

# Whether the lock is live: held with `shipit lock acquire` (until `shipit lock release`), or
# the process that took it still runs (a lock without a holder is dead).
shipit_lock_live() {
  [ "$(shipit_lock_field held)" = 1 ] && return 0
  pid=$(shipit_lock_field holder_pid)
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] &&
    [ "$(shipit_starttime "$pid")" = "$(shipit_lock_field holder_start)" ]
}

shipit_lock_holder() {
  printf 'by %s since %s' "$(shipit_lock_field by)" "$(shipit_lock_field since)"
  if [ "$(shipit_lock_field held)" = 1 ]; then
    printf ', held: %s' "$(shipit_lock_field message)"
    return 0
  fi
  what="$(shipit_lock_field op) $(shipit_lock_field release)"
  if [ "$what" != " " ]; then printf ', %s' "$what"; fi
}

# Reports a lock this run cannot take: who holds it, whether it is live, whether it is a hold.
shipit_lock_facts() {
  shipit_fact locked "$(shipit_lock_holder)"
  if shipit_lock_live; then shipit_fact lock_live 1; else shipit_fact lock_live 0; fi
  if [ "$(shipit_lock_field held)" = 1 ]; then shipit_fact lock_held 1; fi
}

# Waits up to LOCK_WAIT seconds while another run holds a live lock; returns when the lock is
# gone (or dead: waiting would not free it), or the time is up.
shipit_lock_wait() {
  [ "${LOCK_WAIT:-0}" -gt 0 ] || return 0
  deadline=$(($(date +%s) + LOCK_WAIT))
  said=
  while [ -d "$LOCK" ] && shipit_lock_live && [ "$(date +%s)" -lt "$deadline" ]; do
    if [ -z "$said" ]; then
      echo "waiting up to ${LOCK_WAIT}s for the lock held $(shipit_lock_holder)"
      said=1
    fi
    sleep 1
  done
}

shipit_own_lock() { [ "$(shipit_lock_field token)" = "$TOKEN" ]; }

# Refuses to go on when another run broke this run's lock: nothing may be changed any more.
shipit_require_lock() {
  shipit_own_lock && return 0
  echo "the lock on $D is no longer ours (another run broke it); changing nothing more"
  shipit_fact lock_lost 1
  exit 1
}

shipit_unlock() {
  if shipit_own_lock; then rm -rf "$LOCK"; shipit_fact unlocked 1; fi
}

# ---------------------------------------------------------------------------------------------
# Shared by several steps.

shipit_restore_site() {
  if [ -f "$SITE_CHANGED" ]; then
    if [ -f "$SITE_BACKUP" ]; then mv -f "$SITE_BACKUP" "$SITE"; else rm -f "$SITE"; fi
    rm -f "$SITE_CHANGED"
  fi
}

# Stops this run's new app server and processes, unless `current` points at its release.
shipit_stop_new_app() {
  [ "$APP" = 1 ] || return 0
  if [ "$(readlink "$D/current" 2>/dev/null)" = "releases/$ID" ]; then return 0; fi
  if [ "$MANAGER" = systemd ]; then
    shipit_systemd_stop_new
    return 0
  fi
  [ -f "$PROGRAM_CONF" ] || return 0
  names=$(shipit_programs "$PROGRAM_CONF" | tr '\n' ' ')
  rm -f "$PROGRAM_CONF"
  [ -n "$names" ] || return 0
  # Word splitting of the program list is wanted.
  # shellcheck disable=SC2086
  shipit_ctl update $names >/dev/null 2>&1 || true
  echo "stopped the new release's programs: $names"
}

# Undoes what preparing left outside the release: the new app server and the nginx site.
shipit_undo_prepare() {
  shipit_stop_new_app
  if [ "$NGINX" = 1 ]; then shipit_restore_site; fi
}

# The health probe: an HTTP GET over the release's unix socket with the venv's python (always
# there, unlike curl). Prints the status line; fails unless the status is HEALTH_STATUS (or,
# for `any`, below 500).
SHIPIT_PROBE='import socket, sys
path, host, want, sock = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(sock)
    s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    line = s.recv(256).split(b"\r\n")[0].decode()
except OSError as e:
    print("%s: %s" % (sock, e))
    sys.exit(1)
print("GET %s -> %s" % (path, line))
code = int(line.split()[1]) if line.startswith("HTTP/") else 0
ok = 0 < code < 500 if want == "any" else code == int(want)
sys.exit(0 if ok else 1)
'

shipit_probe() {
  "$R/.venv/bin/python" -c "$SHIPIT_PROBE" "$HEALTH_PATH" "$HEALTH_HOST" "$HEALTH_STATUS" "$1"
}

# Puts `current` back where it pointed before this script ($PREVIOUS) by the same rename; after
# a first deploy there was nothing, so the new `current` is removed.
shipit_switch_back() {
  if [ -n "$PREVIOUS" ] && [ "$(readlink "$D/current" 2>/dev/null)" != "$PREVIOUS" ]; then
    ln -sfn "$PREVIOUS" "$D/.current.back" && mv -fT "$D/.current.back" "$D/current" &&
      echo "switched current back to $PREVIOUS"
    shipit_bridge_static "$D/$PREVIOUS" force
  elif [ -z "$PREVIOUS" ] && [ -L "$D/current" ]; then
    rm -f "$D/current"
    echo "removed current: this was the first deploy"
  fi
}

# Inventory: one fact per release, plus `current` and `in_use` (releases some process of this
# user has as its working directory: where the app servers run). `sizes` adds disk usage.
shipit_inventory() {
  DRAINING=$(shipit_draining_releases)
  DREAL=$(cd "$D" 2>/dev/null && pwd -P) || DREAL=$D
  shipit_fact current "$(readlink "$D/current" 2>/dev/null | sed 's#.*/##')"
  if [ -L "$D/current" ] && [ ! -d "$D/current/" ]; then
    shipit_fact dangling "$(readlink "$D/current")"
  fi
  # `ls -l` rather than GNU find's -printf, so BusyBox hosts answer too.
  shipit_fact in_use "$({
    find /proc -mindepth 2 -maxdepth 2 -name cwd -user "$(id -u)" \
        -exec ls -l {} + 2>/dev/null | sed -n 's/.* -> //p' |
      while read -r c; do
        case "$c" in "$DREAL"/releases/*) r=${c#"$DREAL"/releases/}; echo "${r%%/*}" ;; esac
      done
    shipit_installed_releases
    printf '%s\n' "$DRAINING"
  } | sort -u | tr '\n' ' ')"
  # Of those, the ones only stopping: a deploy may still prune them (step_prune waits).
  shipit_fact draining "$(printf '%s\n' "$DRAINING" | sort -u | tr '\n' ' ')"
  # Every release's venv at once, the rest read by the shell itself: a few processes per
  # release would add up to most of the step.
  NL='
'
  venvs=$(shipit_release_venvs)
  for dir in "$D"/releases/*; do
    [ -d "$dir" ] || continue
    id=${dir##*/}
    state=
    if [ -f "$dir/.shipit/state" ]; then read -r state < "$dir/.shipit/state" || true; fi
    size=0
    if [ "${1:-}" = sizes ]; then size=$(du -sk "$dir" 2>/dev/null | cut -f1); fi
    venv=
    case "$NL$venvs" in
      *"$NL$id "*)
        venv=${venvs#*"$id "}
        venv=${venv%%"$NL"*}
        ;;
    esac
    shipit_manifest_revision "$dir"
    shipit_fact "release:$id" "${state:-unknown} ${size:-0} ${venv:--} ${REV:--}"
  done
}

# Each release's venv, an "ID KEY" line each, from one `ls` (a readlink per release would be a
# process each).
shipit_release_venvs() {
  # Release ids are digits, and BusyBox's find cannot print a link's target.
  # shellcheck disable=SC2012
  ls -ld "$D"/releases/*/.venv 2>/dev/null |
    sed -n 's#^.*/releases/\([^/]*\)/\.venv -> \(.*/\)*\([^/]*\)$#\1 \3#p'
}

# Sets REV to the revision release directory $1's manifest names (the line `  "revision": "…",`
# near its top), or to nothing; read by the shell, without a process, up to the file list.
shipit_manifest_revision() {
  REV=
  [ -f "$1/.shipit/manifest.json" ] || return 0
  while IFS= read -r line; do
    case $line in
      '  "revision": "'*'",')
        REV=${line#'  "revision": "'}
        REV=${REV%'",'}
        return 0
        ;;
      '  "files": '*) return 0 ;;
    esac
  done < "$1/.shipit/manifest.json"
}

# Removes the releases named as arguments (never `current`) and every virtualenv no remaining
# release uses; reports one `removed:` fact each and the KiB that frees. They are renamed into
# .shipit/trash (same filesystem) at once and deleted in the background, then the static files
# only the shared store still links: the run does not wait for the disk.
shipit_remove_releases() {
  trash="$D/.shipit/trash"
  bin="$trash/$(date +%s).$$"
  live=$(readlink "$D/current") || live=
  for id in "$@"; do
    if [ -d "$D/releases/$id" ] && [ "$live" != "releases/$id" ]; then
      shipit_discard "$D/releases/$id" "$bin"
      shipit_fact "removed:$id" release
    fi
  done
  used=" $(shipit_release_venvs | sed 's/.* //' | tr '\n' ' ')"
  for venv in "$D"/venvs/*; do
    [ -d "$venv" ] || continue
    case $used in *" ${venv##*/} "*) continue ;; esac
    shipit_discard "$venv" "$bin"
    shipit_fact "removed:venv:${venv##*/}" venv
  done
  # du counts a file linked several times once, under the first argument it meets it in: what
  # only the discarded files and the shared store link is what deleting them frees.
  freed=0
  if [ -d "$bin" ]; then
    freed=$(du -sk "$D/releases" "$bin" "$D/shared" 2>/dev/null | sed -n 2p | cut -f1)
  fi
  shipit_fact freed_kib "${freed:-0}"
  (
    trap '' HUP PIPE
    rm -rf "${trash:?}"/*
    if [ -d "$D/shared/.static" ]; then
      find "$D/shared/.static" -type f -links 1 -exec rm -f {} +
    fi
  ) </dev/null >/dev/null 2>&1 3<&- &
}

# shipit_discard DIR BIN: renames DIR into the trash directory BIN (deleted in the background,
# see shipit_remove_releases), or deletes it here when it cannot be renamed there.
shipit_discard() {
  if ! { mkdir -p "$2" && mv "$1" "$2/" 2>/dev/null; }; then rm -rf "$1"; fi
}

# Runs manage.py in the release (or in `current`, for a rollback's unapply) with its venv.
shipit_manage() {
  dir=$1
  shift
  (shipit_load_env "$dir" && cd "$dir" && "$dir/.venv/bin/python" "$MANAGE" "$@")
}

# shipit_release_python DIR CODE ARGS...: runs the Python CODE in release DIR with its venv and
# environment, as `python -c CODE MANAGE ARGS...` (the snippets find the project by MANAGE).
shipit_release_python() {
  dir=$1
  code=$2
  shift 2
  (shipit_load_env "$dir" && cd "$dir" && "$dir/.venv/bin/python" -c "$code" "$MANAGE" "$@")
}

# ---------------------------------------------------------------------------------------------
# Steps of `begin`.

# step_reap [wait]: what earlier runs left draining (shipit_drain). A finished stop's record is
# removed; what a stop did not finish (it was killed) is stopped here; a stop still under way
# is left to finish, its releases counted in use (see shipit_draining_releases: a rollback or
# `releases --prune` never prunes them), or with `wait` waited for: before a rollback starts a
# release's programs again, and before a deploy prunes a release still stopping (step_prune).
step_reap() {
  # systemd carries out its own stops (stop --no-block): only waiting is left to do.
  if [ "$APP" = 1 ] && [ "$MANAGER" = systemd ] && [ "${1:-}" = wait ]; then shipit_systemd_reap; fi
  for record in "$D"/.shipit/draining/*[0-9]; do
    [ -f "$record" ] || continue
    names=$(sed -n 's/^program=//p' "$record" | tr '\n' ' ')
    if shipit_draining "$record"; then
      if [ "${1:-}" != wait ]; then
        echo "still stopping, in the background: $names"
        continue
      fi
      echo "waiting for the app servers of an earlier run to stop: $names"
      while shipit_draining "$record"; do sleep 0.1; done
    fi
    if [ ! -f "$record.done" ]; then
      # Word splitting of the program list is wanted.
      # shellcheck disable=SC2086
      shipit_ctl update $names || echo "warning: supervisor could not stop $names"
    fi
    rm -f "$record" "$record.done" "$record.log"
  done
}

# Whether the background stop recorded in $1 (see shipit_drain) is still under way: not done,
# and its job still runs.
shipit_draining() {
  [ ! -f "$1.done" ] || return 1
  start=$(shipit_value start "$1")
  [ -n "$start" ] && [ "$(shipit_starttime "$(shipit_value pid "$1")")" = "$start" ]
}

# Releases whose programs still stop in the background, one a line: programs are named
# PROJECT.TARGET.RELEASE[.PROCESS] (or, before, PROJECT-TARGET-RELEASE). Under systemd, those
# with an instance still deactivating.
shipit_draining_releases() {
  for record in "$D"/.shipit/draining/*[0-9]; do
    [ -f "$record" ] && shipit_draining "$record" && sed -n 's/^program=//p' "$record"
  done | sed 's/^[^.]*\.[^.]*\.\([0-9]*\).*$/\1/; s/.*-//'
  if [ "$APP" = 1 ] && [ "$MANAGER" = systemd ]; then shipit_systemd_installed_releases stopping; fi
}

# The tools the remote steps need beyond the shell, checked before anything changes so a minimal
# host (BusyBox/Alpine without coreutils, say) is refused with their names, never half-deployed.
# `command -v` is a builtin: the check costs no process.
shipit_require_tools() {
  missing=
  for tool in tar gzip sha256sum base64 readlink find ls sed sort cut tr du mv ln head wc; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
  done
  if [ -n "$missing" ]; then
    echo "this host lacks$missing, which shipit's remote steps need (on Alpine: apk add coreutils)"
    exit 1
  fi
}

# shipit's own state (lock, log, kept archives) is the deploy user's alone: 0700 directories,
# 0600 archives (see step_verify).
step_layout() {
  shipit_require_tools
  mkdir -p "$D/releases" "$D/shared" "$D/venvs" "$D/.shipit/archives" ||
    { echo "cannot create the layout under $D as $(id -un)"; exit 1; }
  [ -w "$D" ] || { echo "$D is not writable by $(id -un)"; exit 1; }
  chmod 0700 "$D/.shipit" "$D/.shipit/archives"
}

# Takes the lock (exit 75 when another run holds it). BREAK=dead removes a lock whose holder is
# gone; BREAK=force removes any lock.
step_lock() {
  mkdir -p "$D/.shipit" 2>/dev/null || true
  if [ -d "$LOCK" ] && [ "$BREAK" != none ]; then
    if shipit_lock_live && [ "$BREAK" != force ]; then
      shipit_lock_facts
      exit 75
    fi
    if shipit_lock_live; then
      shipit_fact broke_lock "$(shipit_lock_holder), still running"
    else
      shipit_fact broke_lock "$(shipit_lock_holder), no longer connected"
    fi
    rm -rf "$LOCK"
  fi
  while ! mkdir "$LOCK" 2>/dev/null; do
    [ -d "$LOCK" ] || { echo "cannot create $LOCK as $(id -un): is $D writable?"; exit 1; }
    if [ "${LOCK_WAIT:-0}" -gt 0 ] && shipit_lock_live; then
      shipit_lock_wait
      LOCK_WAIT=0
      continue
    fi
    shipit_lock_facts
    exit 75
  done
  holder=$(shipit_holder)
  printf 'token=%s\nby=%s\nsince=%s\nop=%s\nrelease=%s\nholder_pid=%s\nholder_start=%s\n' \
    "$TOKEN" "$DEPLOYER" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$OP" "$ID" "${holder% *}" \
    "${holder#* }" > "$LOCK/info"
  # `shipit lock acquire`: held until `shipit lock release`, whatever happens to this session.
  if [ "$OP" = lock ]; then
    printf 'held=1\nmessage=%s\n' "$LOCK_MESSAGE" >> "$LOCK/info"
    shipit_log "acquired: $LOCK_MESSAGE"
  fi
}

# `shipit lock status`: who holds the lock, changing nothing.
step_lock_status() {
  if [ -d "$LOCK" ]; then shipit_lock_facts; else shipit_fact unlocked 1; fi
}

# `shipit audit`: every line of the deploy log, one fact `log:NUMBER` each (in file order).
step_audit() {
  [ -f "$D/.shipit/log" ] || return 0
  awk -v mark="@@shipit:$SHIPIT_NONCE" '{ printf "%s fact log:%09d %s\n", mark, NR, $0 }' \
    "$D/.shipit/log"
}

# `shipit lock release`: gives back a lock held with `shipit lock acquire`, or one whose run is
# gone; a live run's lock is refused (exit 75: that run gives it back itself).
step_lock_release() {
  if [ ! -d "$LOCK" ]; then
    echo "$D is not locked"
    shipit_fact was_unlocked 1
    return 0
  fi
  if [ "$(shipit_lock_field held)" != 1 ] && shipit_lock_live; then
    shipit_lock_facts
    exit 75
  fi
  holder=$(shipit_lock_holder)
  rm -rf "$LOCK"
  shipit_fact released "$holder"
  shipit_log "released: the lock held $holder"
}

# `current` must be a symlink (or absent): a switch renames a new symlink over it, which cannot
# replace a real directory or file. Refused before anything of the app changes.
shipit_require_current_link() {
  if [ -e "$D/current" ] && [ ! -L "$D/current" ]; then
    kind="file"
    [ -d "$D/current" ] && kind=directory
    echo "$D/current is a $kind, not a symlink: shipit switches releases by renaming a symlink over it."
    echo "Look at what it holds, move it aside (mv $D/current $D/current.before-shipit) and run again."
    exit 1
  fi
}

step_facts() {
  shipit_require_current_link
  shipit_fact user "$(id -un)"
  shipit_fact uid "$(id -u)"
  shipit_inventory
  if [ -f "$(shipit_archive)" ]; then shipit_fact archive present; else shipit_fact archive missing; fi
  if command -v uv >/dev/null 2>&1; then shipit_fact uv "$(command -v uv)"; fi
}

# step_upload SIZE: the archive, unless the host has it already. The script asks shipit for it
# (mark `send`) and reads exactly SIZE bytes of its stdin into the part file that step_verify
# checks: in the begin script, under the lock, so the upload costs no exec of its own. `send
# exact` says this host's `head -c` reads no byte past the archive (GNU's; BusyBox's and
# uutils' read ahead through a buffer), so shipit may send what the script asks for next right
# behind it.
step_upload() {
  A=$(shipit_archive)
  if [ -f "$A" ]; then
    echo "skipped: the host has this archive already"
    return 0
  fi
  if head --version 2>/dev/null | grep -q '(GNU coreutils)'; then
    shipit_mark send exact
  else
    shipit_mark send
  fi
  head -c "$1" <&3 > "$A.part" || exit 1
  got=$(wc -c < "$A.part")
  if [ "$got" -ne "$1" ]; then
    rm -f "$A.part"
    echo "upload interrupted: $got of $1 bytes arrived"
    exit 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Steps of `prepare`.

step_verify() {
  A=$(shipit_archive)
  if [ -f "$A.part" ]; then mv -f "$A.part" "$A"; fi
  [ -f "$A" ] || { echo "the archive $A is missing"; exit 1; }
  GOT=$(sha256sum "$A" | cut -d' ' -f1)
  if [ "$GOT" != "$SHA" ]; then
    rm -f "$A"
    echo "the uploaded archive is corrupt: sha256 $GOT, expected $SHA"
    exit 1
  fi
  chmod 0600 "$A"
  touch "$A"
  echo "sha256 $SHA verified"
}

# Unpacks into releases/$ID and writes the release id where the app reads it
# (.shipit/release), since the archive itself names no release.
step_unpack() {
  if [ -e "$R" ]; then echo "release $ID already exists on this host"; exit 1; fi
  # Code and static files are readable by nginx, whatever the host's umask.
  umask 022
  mkdir -p "$R"
  # -o: do not restore the archive's owner (GNU tar's --no-same-owner; BusyBox knows only -o).
  tar -xzof "$(shipit_archive)" -C "$R"
  mkdir -p "$R/.shipit"
  printf '%s\n' "$ID" > "$R/.shipit/release"
  shipit_state preparing
  echo "unpacked into $R"
}

# step_env BASE64: the release's env file, readable by the deploy user and (through its group)
# the app user only. Its values never reach a command line: printf is a shell builtin.
step_env() {
  (
    umask 077
    printf '%s' "${1-}" | base64 -d > "$R/.shipit/env"
  )
  if [ -n "$APP_USER" ] && [ "$APP_USER" != "$(id -un)" ]; then
    if chgrp "$(id -gn "$APP_USER")" "$R/.shipit/env" 2>/dev/null; then
      chmod 0640 "$R/.shipit/env"
    else
      echo "warning: cannot give $APP_USER's group read access to $R/.shipit/env"
    fi
  fi
  echo "environment: $(grep -c '=' "$R/.shipit/env") variable(s)"
}

# step_shared DIR... -- FILE...: links shared directories and files into the release.
step_shared() {
  shipit_mkdir "$D/shared/log"
  kind=dir
  for path in "$@"; do
    if [ "$path" = "--" ]; then kind="file"; continue; fi
    shared="$D/shared/$path"
    shipit_mkdir "${shared%/*}"
    if [ "$kind" = dir ]; then
      shipit_mkdir "$shared"
    elif [ ! -e "$shared" ]; then
      (umask 077; : > "$shared")
      echo "created empty shared file $path"
    fi
    if [ -e "$R/$path" ] || [ -L "$R/$path" ]; then rm -rf "${R:?}/$path"; fi
    linked="$R/$path"
    shipit_mkdir "${linked%/*}"
    ln -s "$shared" "$linked"
  done
  echo "linked shared paths"
}

# mkdir -p for each directory that is not there yet (the test costs no process).
shipit_mkdir() {
  for dir in "$@"; do
    [ -d "$dir" ] || mkdir -p "$dir"
  done
}

# Reuses the virtualenv whose python version and requirements hash match, or builds it.
# The interpreter named by PY: a path or command as it is, or for a version ("3.12") the one uv
# manages, which uv installs when the host does not have it (and uv itself is installed with
# pip when missing).
shipit_python() {
  case "$PY" in
    [0-9]*) ;;
    *) printf '%s' "$PY"; return 0 ;;
  esac
  PATH="$PATH:$HOME/.local/bin"
  if ! command -v uv >/dev/null 2>&1; then
    echo "uv is not installed on this host; installing it with pip for python $PY" >&2
    python3 -m pip install --quiet --user --break-system-packages uv >&2 ||
      python3 -m pip install --quiet --user uv >&2 ||
      { echo "cannot install uv: install it, or set project.python to an interpreter's path" >&2; return 1; }
  fi
  if ! found=$(uv python find --no-project "$PY" 2>/dev/null); then
    echo "installing python $PY with uv" >&2
    uv python install "$PY" >&2 || { echo "uv cannot install python $PY on this host" >&2; return 1; }
    found=$(uv python find --no-project "$PY") || return 1
  fi
  printf '%s' "$found"
}

# shipit_requirements FILE: prints requirements FILE (inside the release, or absolute) and,
# after a `-- PATH` line each, every file it includes with pip's -r/-c (--requirement,
# --constraint; paths relative to the including file), recursively: what the venv key hashes.
# A file that includes nothing prints as itself. An included file that is missing, or includes
# nested deeper than 16 files (a cycle), is an error.
shipit_requirements() (
  depth=${2:-0}
  case "$1" in /*) path=$1 ;; *) path="$R/$1" ;; esac
  if [ "$depth" -gt 16 ]; then
    echo "requirements files include each other deeper than 16 levels (a cycle?) at $1" >&2
    exit 1
  fi
  [ -f "$path" ] || { echo "requirements file $1, included by another, is missing" >&2; exit 1; }
  cat "$path"
  dir=$(dirname "$1")
  sed -n -E 's/^[[:space:]]*(-r|-c|--requirement|--constraint)[[:space:]=]*([^[:space:]#]+).*$/\2/p' "$path" |
    tr -d '\r' | while IFS= read -r inc; do
      case "$inc" in *://*) continue ;; /*) ;; *) inc="$dir/$inc" ;; esac
      printf '\n-- %s\n' "$inc"
      shipit_requirements "$inc" $((depth + 1)) || exit 1
    done
)

step_virtualenv() {
  REQ_FILE="$R/$REQ"
  [ -f "$REQ_FILE" ] || { echo "requirements file $REQ is missing from the release"; exit 1; }
  PY=$(shipit_python) || exit 1
  PATH="$PATH:$HOME/.local/bin"
  PYVER=$("$PY" -S -c 'import sys; print(sys.version)') ||
    { echo "cannot run python $PY on this host"; exit 1; }
  # The key covers every file the requirements file includes: editing one builds a new venv.
  # Read once (the x keeps the trailing newlines a substitution would drop).
  INCLUDED=$(shipit_requirements "$REQ" && echo x) || exit 1
  KEY=$(printf '%s\n%s' "$PYVER" "${INCLUDED%x}" | sha256sum | cut -c1-16)
  V="$D/venvs/$KEY"
  use=$INSTALLER
  if [ "$use" = auto ]; then
    if command -v uv >/dev/null 2>&1; then use=uv; else use=pip; fi
  fi
  if [ -f "$V/.shipit-complete" ]; then
    echo "reusing virtualenv $KEY: python and requirements unchanged"
    shipit_fact venv "reused $KEY"
  else
    rm -rf "$V"
    umask 022
    UV_PYTHON_DOWNLOADS=never
    UV_NATIVE_TLS=1
    export UV_PYTHON_DOWNLOADS UV_NATIVE_TLS
    echo "building virtualenv $KEY with $use"
    if [ "$use" = uv ]; then
      uv venv --quiet --python "$PY" "$V"
      uv pip sync --quiet --python "$V/bin/python" "$REQ_FILE"
    else
      "$PY" -m venv "$V"
      "$V/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$REQ_FILE"
    fi
    : > "$V/.shipit-complete"
    shipit_fact venv "built $KEY"
  fi
  ln -sfn "../../venvs/$KEY" "$R/.venv"
}

# Python run by step_settings after SHIPIT_SETTINGS_INPUTS: what the release's settings say
# about static and media files, one NAME=value line each, into the file named as its second
# argument, and what that came from into the third.
SHIPIT_DJANGO_SETTINGS='
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import django
django.setup()
from django.apps import apps
from django.conf import settings
def get(name):
    value = getattr(settings, name, None)
    return "" if value is None else str(value).replace("\n", " ")
lines = {
    "STATICFILES": "1" if apps.is_installed("django.contrib.staticfiles") else "0",
    "STATIC_URL": get("STATIC_URL"),
    "STATIC_ROOT": get("STATIC_ROOT"),
    "MEDIA_URL": get("MEDIA_URL"),
    "MEDIA_ROOT": get("MEDIA_ROOT"),
}
# What else collectstatic reads, for step_collectstatic: STATIC_CONFIG sums up the settings
# (paths relative to the release), STATICFILES_DIR lines name the extra directories. Only
# Django finders and directories inside the release make the inputs knowable.
release = os.path.dirname(os.path.abspath(sys.argv[1]))
def inside(path):
    rel = os.path.relpath(os.path.abspath(str(path)), release)
    return None if rel.startswith("..") else rel
finders = list(getattr(settings, "STATICFILES_FINDERS", []))
known = {"django.contrib.staticfiles.finders.FileSystemFinder",
         "django.contrib.staticfiles.finders.AppDirectoriesFinder"}
dirs = [d[1] if isinstance(d, (list, tuple)) else d for d in getattr(settings, "STATICFILES_DIRS", [])]
rel_dirs = [inside(d) for d in dirs]
storages = getattr(settings, "STORAGES", {}) or {}
storage = storages.get("staticfiles") or getattr(settings, "STATICFILES_STORAGE", "")
backend = str(storage.get("BACKEND", "") if isinstance(storage, dict) else storage)
try:
    import importlib.util
    origin = importlib.util.find_spec(backend.rpartition(".")[0]).origin
except Exception:
    origin = None
# A storage class of the project itself (not of the venv) is code the hash does not cover.
project_storage = origin is None or not os.path.relpath(
    os.path.realpath(origin), os.path.realpath(release)).startswith("..")
skippable = (set(finders) <= known and None not in rel_dirs and bool(get("STATIC_ROOT"))
             and not project_storage)
lines["STATIC_SKIPPABLE"] = "1" if skippable else "0"
lines["STATIC_CONFIG"] = repr((get("STATIC_URL"), inside(get("STATIC_ROOT") or "/"), finders,
    [(d[0] if isinstance(d, (list, tuple)) else "", r) for d, r in zip(getattr(settings, "STATICFILES_DIRS", []), rel_dirs)],
    repr(storage))).replace("\n", " ")
with open(sys.argv[2], "w") as out:
    for name, value in lines.items():
        out.write("%s=%s\n" % (name, value))
    for rel in rel_dirs:
        if rel is not None:
            out.write("STATICFILES_DIR=%s\n" % rel)
# What the answer came from, for the next release to reuse it (SHIPIT_SETTINGS_CACHED): the
# project modules imported and the files and directories read, but those of the venv and of
# Python itself (the venv key covers them); none when one cannot be hashed.
inputs = {m.__file__ for m in list(sys.modules.values()) if isinstance(getattr(m, "__file__", None), str)}
inputs |= {path for path in shipit_read if not path.endswith(".pyc")}
# Without audit hooks (Python < 3.8) what was read is unknown: nothing is recorded.
keep, ok = set(), shipit_hooked
def under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")
for path in inputs:
    real = os.path.realpath(os.path.join(release, path[4:] if path.startswith("dir:") else path))
    if any(under(real, top) for top in shipit_skip):
        continue
    if any(under(real, top) for top in ("/proc", "/dev", "/sys", "/run")):
        ok = False
    elif under(real, os.path.realpath(release)):
        rel = os.path.relpath(real, os.path.realpath(release))
        # .shipit/release holds the release id alone, as SHIPIT_RELEASE does: an answer that
        # depends on it names it, which SHIPIT_SETTINGS_CACHED refuses to reuse.
        if not path.startswith("dir:") and rel != os.path.join(".shipit", "release"):
            keep.add(rel)
    else:
        keep.add(("dir:" if path.startswith("dir:") else "") + real)
if ok:
    with open(sys.argv[3], "w") as out:
        out.write("key=%s\n" % shipit_settings_key(keep))
        out.writelines("input=%s\n" % path for path in sorted(keep))
'

# Python before SHIPIT_DJANGO_SETTINGS and SHIPIT_SETTINGS_CACHED: shipit_settings_key(INPUTS),
# a hash of what the settings probe's answer depends on: the environment as the probe starts
# (Django sets TZ) but for what differs from one session or release to the next, the venv,
# every file name of the release (a new local_settings.py counts) and the content of every
# input (paths relative to the release, or absolute; `dir:PATH` for a directory's listing),
# the release's revision in it left out (the settings selector records it: a new commit is
# not new settings; SHIPIT_SETTINGS_CACHED refuses an answer that names the revision). As the
# probe, it records the files and directories opened (an audit hook) in shipit_read.
SHIPIT_SETTINGS_INPUTS='import hashlib, json, os, sys
release = os.path.dirname(os.path.abspath(sys.argv[1]))
shipit_skip = {os.path.realpath(p) for p in (os.path.join(release, ".venv"), sys.base_prefix,
    sys.base_exec_prefix, sys.prefix)}
shipit_environ = sorted((k, v) for k, v in os.environ.items()
    if not k.startswith(("SSH_", "SHIPIT_")) and k not in ("PWD", "OLDPWD", "SHLVL", "_"))
def shipit_revision(top):
    try:
        with open(os.path.join(top, ".shipit", "manifest.json")) as f:
            revision = str(json.load(f).get("revision") or "")
    except (OSError, ValueError, AttributeError):
        return ""
    return revision if len(revision) >= 7 else ""
def shipit_settings_key(inputs):
    h = hashlib.sha256()
    def add(*parts):
        h.update(repr(parts).encode() + b"\n")
    revision = shipit_revision(release).encode()
    add(shipit_environ)
    add(os.readlink(os.path.join(release, ".venv")), sys.argv[1])
    for top, dirs, files in os.walk(release):
        rel = os.path.relpath(top, release)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__"
            and not (rel == "." and d in (".venv", ".shipit")))
        add(rel, dirs, sorted(files))
    for path in sorted(inputs):
        try:
            if path.startswith("dir:"):
                add(path, sorted(os.listdir(path[4:])))
            else:
                with open(os.path.join(release, path), "rb") as f:
                    data = f.read()
                if revision:
                    data = data.replace(revision, b"@@REVISION@@")
                add(path, hashlib.sha256(data).hexdigest())
        except OSError as e:
            add(path, e.errno)
    return h.hexdigest()[:32]
shipit_read = set()
def shipit_audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        # open() gives a mode, os.open() flags (a .pyc Python writes, say): only reads count.
        mode, flags = args[1], args[2]
        if isinstance(mode, str):
            writes = any(c in mode for c in "wax+")
        else:
            writes = bool((flags or 0) & (os.O_WRONLY | os.O_RDWR))
        if not writes:
            shipit_read.add(os.fsdecode(args[0]))
    elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        shipit_read.add("dir:" + os.fsdecode(args[0]))
'

# Python run by step_settings before asking Django: the answer the live release ($3) got, when
# everything it depends on (its .shipit/django.inputs) hashes the same in this release; its
# paths inside the live release are moved to this one. Exits 1 when it cannot be reused.
SHIPIT_SETTINGS_CACHED='
live = sys.argv[3]
with open(os.path.join(live, ".shipit", "django.inputs")) as f:
    record = f.read().splitlines()
inputs = [line[6:] for line in record if line.startswith("input=")]
if not record or record[0] != "key=" + shipit_settings_key(inputs):
    sys.exit(1)
with open(os.path.join(live, ".shipit", "django")) as f:
    answer = f.read()
for old, new in ((os.path.realpath(live), os.path.realpath(release)), (live, release)):
    answer = answer.replace(old + "/", new + "/").replace(old + "\n", new + "\n")
# An answer that still names the live release (its id or revision in STATIC_URL, say) is not
# this one.
revision = shipit_revision(live)
if os.path.basename(live) in answer or (revision and revision in answer):
    sys.exit(1)
with open(sys.argv[2], "w") as out:
    out.write(answer)
with open(sys.argv[4], "w") as out:
    out.write("\n".join(record) + "\n")
'

# shipit_django_value NAME RELEASE: NAME's value in the release's settings answer
# (.shipit/django), or nothing.
shipit_django_value() { shipit_value "$1" "$2/.shipit/django"; }

# The part of path $1 below directory $2 (as written or with symlinks resolved), or nothing.
shipit_below() {
  real=$(cd "$2" 2>/dev/null && pwd -P) || real=$2
  case "$1" in
    "$2"/*) printf '%s' "${1#"$2"/}" ;;
    "$real"/*) printf '%s' "${1#"$real"/}" ;;
  esac
}

# Asks the release's settings (with its venv and environment) where static and media files
# live and under which URLs, so collectstatic and nginx use exactly that. Setting Django up
# takes about a second: the live release's answer is reused when nothing it came from changed
# (see SHIPIT_SETTINGS_CACHED).
step_settings() {
  shipit_load_env "$R"
  cd "$R" || exit 1
  rm -f "$R/.shipit/django.inputs"
  if [ -n "$PREVIOUS" ] && [ -f "$D/$PREVIOUS/.shipit/django.inputs" ] &&
    "$R/.venv/bin/python" -c "$SHIPIT_SETTINGS_INPUTS$SHIPIT_SETTINGS_CACHED" "$MANAGE" \
      "$R/.shipit/django" "$D/$PREVIOUS" "$R/.shipit/django.inputs" 2>/dev/null; then
    echo "settings: skipped, nothing they read changed since ${PREVIOUS##*/} (its answer reused)"
    shipit_fact settings "skipped, nothing they read changed since ${PREVIOUS##*/}"
  else
    "$R/.venv/bin/python" -c "$SHIPIT_SETTINGS_INPUTS
shipit_hooked = hasattr(sys, 'addaudithook') and sys.addaudithook(shipit_audit) is None
$SHIPIT_DJANGO_SETTINGS" "$MANAGE" "$R/.shipit/django" "$R/.shipit/django.inputs"
    shipit_fact settings ran
  fi
  while IFS= read -r line; do printf '  %s\n' "$line"; done < "$R/.shipit/django"
}

# The shared static store: every file of the recent releases' STATIC_ROOT, hard-linked, so a
# page rendered by the previous release still finds its hashed CSS after the switch or a
# rollback. Preparing adds only new names (the live release's files are left as they are);
# switching makes the live release's files win (`force`).
shipit_bridge_static() {
  rel=$(shipit_below "$(shipit_django_value STATIC_ROOT "$1")" "$1")
  [ -n "$rel" ] || return 0
  root="$1/$rel"
  [ -d "$root" ] || return 0
  mkdir -p "$D/shared/.static"
  if [ "${2:-}" = force ]; then
    # BusyBox cp fails on a file the store already links (a release whose collectstatic was
    # skipped links the same files): that one is already where it belongs.
    cp -alf "$root/." "$D/shared/.static/" 2>/dev/null ||
      [ -z "$(find "$root" -type f -links 1 | head -n 1)" ] ||
      { echo "cannot link the static files of $1 into $D/shared/.static"; return 1; }
  else
    cp -aln "$root/." "$D/shared/.static/" 2>/dev/null || cp -al -n "$root/." "$D/shared/.static/"
  fi
}

# step_hook COMMAND: a user's hook, in the release, with its venv first on PATH, the app's
# environment, and what the run is about: SHIPIT_RELEASE, SHIPIT_REVISION, SHIPIT_TARGET,
# SHIPIT_HOSTS (every host of the target, space-separated), SHIPIT_DEPLOYER (user@machine).
step_hook() {
  shipit_load_env "$R"
  cd "$R" || exit 1
  PATH="$R/.venv/bin:$PATH"
  SHIPIT_REVISION=$REVISION
  # TARGET comes from the preamble (shellcheck takes it for a misspelt `target`).
  # shellcheck disable=SC2153
  SHIPIT_TARGET=$TARGET
  SHIPIT_HOSTS=$HOSTS
  SHIPIT_DEPLOYER=$DEPLOYER
  export PATH SHIPIT_REVISION SHIPIT_TARGET SHIPIT_HOSTS SHIPIT_DEPLOYER
  eval "$1"
}

# Python run by step_migrate: `migrate --noinput`, holding a PostgreSQL advisory lock for the
# whole run when the database is PostgreSQL, so that two runs (of shipit or of anything else
# using the same key) never migrate one database at the same time. Django takes no lock itself.
SHIPIT_MIGRATE='import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import django
django.setup()
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
KEY = 7236969237430035567
lock = None
if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
    lock = connections.create_connection(DEFAULT_DB_ALIAS)
    with lock.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [KEY])
        if not cursor.fetchone()[0]:
            print("waiting for another migration of this database to finish", flush=True)
            cursor.execute("SELECT pg_advisory_lock(%s)", [KEY])
    print("holding the database migration lock", flush=True)
call_command("migrate", interactive=False)
if lock is not None:
    lock.close()
'

# Python run by step_migrate after `migrate`, and alone to decide whether migrate may be
# skipped (and by step_migrations whether a rollback may trust what releases recorded): what
# decides what migrate does besides the migration files, as lines into the file named by its
# second argument. `apps=`: a hash of INSTALLED_APPS, MIGRATION_MODULES and DATABASE_ROUTERS;
# `database=`: a hash of each database alias's engine, name, host and port (never a password;
# an SQLite file by its real path); `applied=`: a hash of every row of the default database's
# migration table (any migrate or unapply since changes it; `unknown` when it cannot be read).
# Alone it imports the settings only (no django.setup()), which is what makes checking cheap.
SHIPIT_DB_STATE='
import hashlib, os, sys, warnings
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
warnings.simplefilter("ignore")
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
def digest(value):
    return hashlib.sha256(repr(value).encode()).hexdigest()[:32]
ident = []
for alias in sorted(settings.DATABASES):
    db = settings.DATABASES[alias]
    name = str(db.get("NAME") or "")
    if "sqlite" in str(db.get("ENGINE")) and name and not name.startswith((":", "file:")):
        name = os.path.realpath(name)
    ident.append((alias, str(db.get("ENGINE")), name, str(db.get("HOST") or ""), str(db.get("PORT") or "")))
apps = (list(settings.INSTALLED_APPS), sorted(getattr(settings, "MIGRATION_MODULES", {}).items()),
        [str(r) for r in getattr(settings, "DATABASE_ROUTERS", [])])
applied = "unknown"
try:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT id, app, name FROM django_migrations ORDER BY id")
        applied = digest([tuple(row) for row in cursor.fetchall()])
except Exception:
    pass
with open(sys.argv[2], "w") as out:
    out.write("apps=%s\ndatabase=%s\napplied=%s\n" % (digest(apps), digest(ident), applied))
'

# Python run by step_migrate after `migrate`, before SHIPIT_DB_STATE: what `showmigrations
# --plan` would print now, into the file named by its third argument, for a rollback to answer
# its migration comparison without asking Django again (see step_migrations).
SHIPIT_PLAN='
from django.db.migrations.loader import MigrationLoader
loader = MigrationLoader(connections[DEFAULT_DB_ALIAS])
plan, seen = [], set()
for target in loader.graph.leaf_nodes():
    for key in loader.graph.forwards_plan(target):
        if key not in seen:
            seen.add(key)
            plan.append(key)
with open(sys.argv[3], "w") as out:
    for key in plan:
        out.write("[%s]  %s.%s\n" % ("X" if key in loader.applied_migrations else " ", key[0], key[1]))
'

# Hash of every migration file (`*/migrations/*.py`) of release $1 and of the packages in its
# venv, by paths relative to each: releases with the same migrations hash the same. A venv never
# changes once built (other requirements build another), so its part is worked out once (a walk
# of thousands of files) and kept in the venv.
shipit_migrations_hash() {
  {
    (cd "$1" && find . -path ./.venv -prune -o -path '*/migrations/*.py' -type f \
      -exec sha256sum {} + | LC_ALL=C sort)
    kept=$1/.venv/.shipit-migrations
    if [ -f "$kept" ] && [ -f "$1/.venv/.shipit-complete" ]; then
      cat "$kept"
    else
      venv_part=$(cd "$1/.venv/" && find . -path '*/migrations/*.py' -type f \
        -exec sha256sum {} + | LC_ALL=C sort | sha256sum | cut -c1-32)
      printf '%s\n' "$venv_part"
      if [ -f "$1/.venv/.shipit-complete" ]; then
        printf '%s\n' "$venv_part" > "$kept.tmp" 2>/dev/null && mv -f "$kept.tmp" "$kept"
      fi
    fi
  } | sha256sum | cut -c1-32
}

# Whether migrate has provably nothing to do: the live release recorded (.shipit/migrated) a
# complete migrate of the same migration files (hash $1), against the same database, whose
# migration table has not changed since. Unknown (a first deploy, no record, a dangling
# `current`, a database that cannot be read) is never provably nothing.
shipit_migrate_done() {
  shipit_migrate_files_same "$1" || return 1
  "$R/.venv/bin/python" -c "$SHIPIT_DB_STATE" "$MANAGE" "$R/.shipit/database" || return 1
  shipit_migrate_database_same
}

# The part of shipit_migrate_done that needs no database: the migration files hash ($1) as
# those of the live release's complete migrate.
shipit_migrate_files_same() {
  [ -n "$PREVIOUS" ] && [ -f "$D/$PREVIOUS/.shipit/migrated" ] || return 1
  [ "$(shipit_value migrations "$D/$PREVIOUS/.shipit/migrated")" = "$1" ]
}

# The rest: the database, as SHIPIT_DB_STATE found it ($R/.shipit/database), is the one the
# live release migrated, its migration table unchanged since.
shipit_migrate_database_same() {
  [ -f "$R/.shipit/database" ] && ! grep -q '^applied=unknown' "$R/.shipit/database" || return 1
  grep -v '^migrations=' "$D/$PREVIOUS/.shipit/migrated" | cmp -s - "$R/.shipit/database"
}

shipit_migrate_skip() {
  echo "migrate: skipped, no migration changed since ${PREVIOUS##*/}"
  shipit_fact migrate "skipped, no migration changed since ${PREVIOUS##*/}"
  cp "$D/$PREVIOUS/.shipit/showmigrations" "$R/.shipit/showmigrations" 2>/dev/null || true
}

shipit_migrate_run() {
  rm -f "$R/.shipit/database" "$R/.shipit/showmigrations"
  "$R/.venv/bin/python" -c "$SHIPIT_MIGRATE$SHIPIT_PLAN$SHIPIT_DB_STATE" "$MANAGE" \
    "$R/.shipit/database" "$R/.shipit/showmigrations"
  shipit_fact migrate ran
}

# Records what migrate found (migration files hash $1, the database) for the next deploy.
shipit_migrate_record() {
  { printf 'migrations=%s\n' "$1"; cat "$R/.shipit/database"; } > "$R/.shipit/migrated"
}

# Where the pid of the database check step_migrate defers is kept (see shipit_background_dir).
shipit_deferred_pid_file() { printf '%s.migrate' "$(shipit_background_dir)"; }

# The pid of the deferred database check while it runs; fails once it is gone.
shipit_deferred_pid() { shipit_job_pid "$(shipit_deferred_pid_file)"; }

# step_migrate [always|defer]: `migrate`, unless nothing provably changed (see
# shipit_migrate_done); `always` runs it anyway. With `defer`, when the migration files are the
# live release's, the database is read in the background while the app server starts, and
# step_migrate_check decides. Records what it found in $R/.shipit/migrated for the next deploy.
step_migrate() {
  shipit_require_lock
  cd "$R" || exit 1
  [ -f "$MANAGE" ] || { echo "$MANAGE not found in the release"; exit 1; }
  shipit_load_env "$R"
  # A database file migrate creates (SQLite) is not world-readable.
  umask 027
  HASH=$(shipit_migrations_hash "$R")
  if [ "${1:-}" = defer ] && shipit_migrate_files_same "$HASH"; then
    rm -f "$R/.shipit/database"
    printf '%s\n' "$HASH" > "$R/.shipit/migrate-deferred"
    (
      trap '' HUP PIPE
      "$R/.venv/bin/python" -c "$SHIPIT_DB_STATE" "$MANAGE" "$R/.shipit/database.tmp" &&
        mv -f "$R/.shipit/database.tmp" "$R/.shipit/database"
    ) </dev/null >/dev/null 2>&1 3<&- &
    shipit_job_record "$!" "$(shipit_deferred_pid_file)"
    echo "no migration file changed since ${PREVIOUS##*/}: the database is read while the app server starts (step migrate-check)"
    return 0
  fi
  if [ "${1:-}" != always ] && shipit_migrate_done "$HASH"; then
    shipit_migrate_skip
  else
    shipit_migrate_run
  fi
  shipit_migrate_record "$HASH"
}

# Ends what step_migrate deferred: once its read of the database is done, migrate is skipped
# if the database is unchanged since the live release migrated it. Otherwise (a database
# migrated or replaced by hand since) the new release's app server and processes, started
# meanwhile, are stopped, migrate runs, and they start again: they never serve before migrate.
step_migrate_check() {
  if [ ! -f "$R/.shipit/migrate-deferred" ]; then
    echo "nothing to check: migrate ran or was skipped before the app server started"
    return 0
  fi
  HASH=$(cat "$R/.shipit/migrate-deferred")
  while shipit_deferred_pid > /dev/null; do sleep 0.02; done
  rm -f "$(shipit_deferred_pid_file)" "$R/.shipit/migrate-deferred"
  if shipit_migrate_database_same; then
    shipit_migrate_skip
  else
    echo "the database changed since ${PREVIOUS##*/} migrated it: stopping the new app server, migrating, starting it again"
    shipit_stop_new_app
    (
      cd "$R"
      shipit_load_env "$R"
      umask 027
      shipit_migrate_run
    )
    step_start_app
  fi
  shipit_migrate_record "$HASH"
}

# Whether the new app server and processes cannot be judged yet: the database check
# step_migrate deferred (waited for if it still runs) found the database changed, so migrate
# must run first; step_migrate_check then starts them again.
shipit_migrate_pending() {
  [ -f "$R/.shipit/migrate-deferred" ] || return 1
  while shipit_deferred_pid > /dev/null; do sleep 0.02; done
  if shipit_migrate_database_same; then return 1; fi
  echo "the database changed since ${PREVIOUS##*/} migrated it: not judged before migrate (step migrate-check)"
}

# Stops the database check step_migrate deferred (a failed or cut-off prepare).
shipit_stop_deferred() {
  if pid=$(shipit_deferred_pid); then kill -TERM "$pid" 2>/dev/null || true; fi
  rm -f "$(shipit_deferred_pid_file)"
}

# Hash of what collectstatic reads for release $1: the static settings, the venv (its key names
# python and the requirements), every file under a `static/` directory of the release and in
# its STATICFILES_DIRS (by paths relative to the release). Prints nothing when that cannot be
# known (see SHIPIT_DJANGO_SETTINGS: other finders, a directory outside the release).
shipit_static_hash() {
  [ "$(shipit_django_value STATIC_SKIPPABLE "$1")" = 1 ] || return 0
  static_rel=$(shipit_below "$(shipit_django_value STATIC_ROOT "$1")" "$1")
  {
    shipit_django_value STATIC_CONFIG "$1"
    readlink "$1/.venv"
    cd "$1" || exit 1
    find . -path ./.venv -prune -o -path "./$static_rel" -prune -o -path ./.shipit -prune -o \
      -path '*/static/*' \( -type f -o -type l \) -exec sha256sum {} + | LC_ALL=C sort
    while IFS= read -r line; do
      case $line in STATICFILES_DIR=*) ;; *) continue ;; esac
      dir=${line#STATICFILES_DIR=}
      printf 'dir %s\n' "$dir"
      [ -d "$dir" ] && find "$dir" \( -type f -o -type l \) -exec sha256sum {} + | LC_ALL=C sort
    done < "$1/.shipit/django"
  } | sha256sum | cut -c1-32
}

# collectstatic, unless its inputs hash the same as the live release's (.shipit/static): then
# the live release's STATIC_ROOT is hard-linked into this one, which is what collectstatic would
# write, byte for byte.
step_collectstatic() {
  if [ "$(shipit_django_value STATICFILES "$R")" = 0 ]; then
    echo "collectstatic skipped: django.contrib.staticfiles is not installed"
    return 0
  fi
  if [ -z "$(shipit_django_value STATIC_ROOT "$R")" ]; then
    echo "collectstatic skipped: the settings have no STATIC_ROOT"
    return 0
  fi
  umask 022
  HASH=$(shipit_static_hash "$R")
  rel=$(shipit_below "$(shipit_django_value STATIC_ROOT "$R")" "$R")
  if [ -n "$HASH" ] && [ -n "$rel" ] && [ -n "$PREVIOUS" ] && [ ! -e "$R/$rel" ] &&
    [ -d "$D/$PREVIOUS/$rel" ] && [ "$(cat "$D/$PREVIOUS/.shipit/static" 2>/dev/null)" = "$HASH" ] &&
    parent="$R/$rel" && mkdir -p "${parent%/*}" && cp -al "$D/$PREVIOUS/$rel" "$R/$rel"; then
    echo "collectstatic: skipped, static inputs unchanged since ${PREVIOUS##*/} (its files hard-linked)"
    shipit_fact collectstatic "skipped, static inputs unchanged since ${PREVIOUS##*/}"
  else
    shipit_manage "$R" collectstatic --noinput
    shipit_fact collectstatic ran
    # Files the live release links are in the shared store already.
    shipit_bridge_static "$R"
  fi
  if [ -n "$HASH" ]; then printf '%s\n' "$HASH" > "$R/.shipit/static"; fi
}

# ---------------------------------------------------------------------------------------------
# Steps in the background: the settings probe and collectstatic need no database, so a deploy
# runs them while `migrate` runs (see plan/deploy.rs, overlaps_migrate). The job writes each
# step's output, status and time to files that step_await reports as the step's own;
# shipit_stop_background ends the job when the script fails or is cut off.

# The job's directory, named by the run's nonce: in /dev/shm (else $TMPDIR or /tmp), not under
# $D, so that a full deploy_to cannot swallow what a failing step said (a full disk is a likely
# reason for collectstatic to fail).
shipit_background_dir() {
  for base in /dev/shm "${TMPDIR:-/tmp}" /tmp; do
    if [ -d "$base" ] && [ -w "$base" ]; then break; fi
  done
  printf '%s/shipit-%s' "$base" "$SHIPIT_NONCE"
}

# The time since boot in hundredths of a second.
shipit_uptime() {
  read -r t _ < /proc/uptime
  printf '%s' "${t%.*}${t#*.}"
}

# step_background ID FUNCTION [ID FUNCTION]...: runs the functions one after another in a
# background job, each as a step would run (a subshell with `set -e`), until one fails; then it
# writes `done`. The job holds nothing of the connection: its input is /dev/null, its output
# goes to files.
step_background() {
  dir=$(shipit_background_dir)
  # A new private directory: refused if the name is taken.
  (umask 077 && mkdir "$dir")
  printf ' %s' "$@" | sed 's/ step_[a-z_]*//g; s/^ //' > "$dir/steps"
  (
    set +e
    while [ "$#" -ge 2 ]; do
      started=$(shipit_uptime)
      (
        set -e
        "$2"
      ) > "$dir/$1.out" 2>&1
      status=$?
      printf '%s %s\n' "$status" "$(($(shipit_uptime) - started))" > "$dir/$1.tmp"
      mv "$dir/$1.tmp" "$dir/$1.status"
      [ "$status" -eq 0 ] || break
      shift 2
    done
    : > "$dir/done"
  ) < /dev/null > /dev/null 2>&1 3<&- &
  shipit_job_record "$!" "$dir/pid"
  echo "started in the background (pid $!): $(cat "$dir/steps")"
}

# The pid of the background job while it runs; fails once it is gone.
shipit_background_pid() { shipit_job_pid "$(shipit_background_dir)/pid"; }

# shipit_job_record PID FILE: keeps a background job's pid and start time in FILE, for
# shipit_job_pid.
shipit_job_record() { printf '%s %s\n' "$1" "$(shipit_starttime "$1")" > "$2"; }

# shipit_job_pid FILE: the pid of the job shipit_job_record kept in FILE while it runs (its
# start time checked, so a pid used again later is not taken for it); fails once it is gone.
shipit_job_pid() {
  read -r job_pid job_start 2>/dev/null < "$1" || return 1
  [ -n "${job_start:-}" ] && [ "$(shipit_starttime "$job_pid")" = "$job_start" ] || return 1
  printf '%s' "$job_pid"
}

# step_await ID: waits for step ID of the background job, prints its output (facts included)
# and the time it took, and fails with its status. After the job's last step, its directory
# goes.
step_await() {
  dir=$(shipit_background_dir)
  # The status file is looked for every 10 ms (a test of the shell's own); whether the job
  # still runs (a few processes) every 100 ms.
  polls=0
  while [ ! -f "$dir/$1.status" ]; do
    if [ $((polls % 10)) -eq 0 ] && ! shipit_background_pid > /dev/null; then
      [ -f "$dir/$1.status" ] && break
      cat "$dir/$1.out" 2>/dev/null || true
      echo "$1 did not finish: its background job is gone"
      return 1
    fi
    polls=$((polls + 1))
    sleep 0.01
  done
  cat "$dir/$1.out"
  if ! read -r status hundredths < "$dir/$1.status"; then
    echo "$1 ended in the background, but its status could not be read"
    return 1
  fi
  printf '%s took %d.%02d s in the background\n' "$1" "$((hundredths / 100))" "$((hundredths % 100))"
  if [ "$status" -eq 0 ] && [ "$(sed 's/.* //' "$dir/steps")" = "$1" ]; then rm -rf "$dir"; fi
  return "$status"
}

# The pids of every process below process $1 (Linux /proc), children before grandchildren.
shipit_descendants() {
  # A pid, its state and its parent's pid, per process (the name in parentheses removed).
  cat /proc/[0-9]*/stat 2>/dev/null | sed 's/ (.*) / /' | awk -v root="$1" '
    { parent[$1] = $3 }
    END {
      n = split(root, queue, " ")
      for (i = 1; i <= n; i++)
        for (p in parent)
          if (parent[p] == queue[i]) { queue[++n] = p; printf "%s ", p }
    }'
}

# Ends the background job of a failed or cut-off prepare and whatever it started, waits (up to
# 5 s, then SIGKILL) until they are gone, so that nothing of it writes into the release after
# the cleanup, and removes its directory. The job is stopped first, so it cannot start a
# process while its tree is read.
shipit_stop_background() {
  shipit_stop_deferred
  dir=$(shipit_background_dir)
  [ -d "$dir" ] || return 0
  if [ ! -f "$dir/done" ] && pid=$(shipit_background_pid); then
    kill -STOP "$pid" 2>/dev/null || true
    tree=$(shipit_descendants "$pid")
    # Word splitting of the pid lists is wanted.
    # shellcheck disable=SC2086
    {
      kill -STOP $tree 2>/dev/null || true
      tree="$pid $tree $(shipit_descendants "$pid")"
      kill -TERM $tree 2>/dev/null || true
      kill -CONT $tree 2>/dev/null || true
      tries=0
      while [ "$tries" -lt 50 ]; do
        alive=
        for p in $tree; do kill -0 "$p" 2>/dev/null && alive=$p; done
        [ -n "$alive" ] || break
        sleep 0.1
        tries=$((tries + 1))
      done
      [ -z "$alive" ] || kill -KILL $tree 2>/dev/null || true
    }
    echo "stopped the background steps: $(cat "$dir/steps" 2>/dev/null)"
  fi
  rm -rf "$dir"
}

# Python run by the `schedule` process (a `once` process on the primary, see resolve.rs) as
# .shipit/scheduler.py SCHEDULE_TAB: a cron for the target. Each minute, every entry of the
# table (CRON<TAB>COMMAND lines) whose five fields match the local time runs with `sh -c` in the
# release `current` points at then, with that release's env file and venv, SHIPIT_RELEASE set.
# Never twice: an entry fires once per minute across schedulers (the last minute it fired is
# kept in shared/.schedule), and not while its previous run still holds its lock (a run started
# by the scheduler of the previous release included). On SIGTERM it starts nothing more and
# waits for the commands it started.
# The Python is in single quotes on purpose: nothing in it is for the shell.
# shellcheck disable=SC2016
SHIPIT_SCHEDULER='import fcntl, hashlib, os, signal, subprocess, sys, time
RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
def values(field, low, high):
    out = set()
    for part in field.split(","):
        rng, _, step = part.partition("/")
        if rng == "*":
            a, b = low, high
        elif "-" in rng:
            a, b = (int(x) for x in rng.split("-"))
        else:
            a = b = int(rng)
            if step:
                b = high
        out.update(range(a, b + 1, int(step or 1)))
    return out
def due(spec, t):
    f = spec.split()
    minute, hour, dom, month, dow = (values(x, *r) for x, r in zip(f, RANGES))
    dow = {d % 7 for d in dow}
    wday = (t.tm_wday + 1) % 7
    if not f[2].startswith("*") and not f[4].startswith("*"):
        day = t.tm_mday in dom or wday in dow
    else:
        day = t.tm_mday in dom and wday in dow
    return t.tm_min in minute and t.tm_hour in hour and t.tm_mon in month and day
base = os.path.dirname(os.path.dirname(os.getcwd()))
state = os.path.join(base, "shared", ".schedule")
os.makedirs(state, exist_ok=True)
entries = []
with open(sys.argv[1]) as table:
    for line in table:
        if "\t" in line:
            spec, command = line.rstrip("\n").split("\t", 1)
            key = hashlib.sha256(line.encode()).hexdigest()[:16]
            entries.append((spec, command, os.path.join(state, key)))
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
running = []
def fire(spec, command, path, minute):
    lock = open(path + ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("%s: still running from before, not started again: %s" % (spec, command), flush=True)
        lock.close()
        return
    try:
        with open(path + ".last") as last:
            if int(last.read() or 0) >= minute:
                lock.close()
                return
    except (OSError, ValueError):
        pass
    with open(path + ".last.tmp", "w") as last:
        last.write(str(minute))
    os.replace(path + ".last.tmp", path + ".last")
    current = os.path.realpath(os.path.join(base, "current"))
    env = dict(os.environ, SHIPIT_RELEASE=os.path.basename(current))
    script = "set -a; [ -f .shipit/env ] && . ./.shipit/env; set +a; PATH=\"$PWD/.venv/bin:$PATH\"; export PATH; " + command
    print("%s: running in %s: %s" % (spec, current, command), flush=True)
    running.append((subprocess.Popen(["/bin/sh", "-c", script], cwd=current, env=env, pass_fds=[lock.fileno()]), lock, command))
minute = int(time.time() // 60)
while not stopping:
    for spec, command, path in entries:
        if due(spec, time.localtime(minute * 60)):
            fire(spec, command, path, minute)
    for item in running[:]:
        if item[0].poll() is not None:
            print("exit %s: %s" % (item[0].returncode, item[2]), flush=True)
            item[1].close()
            running.remove(item)
    while not stopping and int(time.time() // 60) == minute:
        time.sleep(0.5)
    minute = int(time.time() // 60)
for process, lock, command in running:
    print("waiting for: %s" % command, flush=True)
    process.wait()
'

# step_configs NGINX APP ONCE SCHEDULE UNITS UNITS_ONCE TIMERS (each base64): keeps the
# release's rendered service configs in $R/.shipit (`-` for what this host does not run): the
# nginx site, the supervisor programs started before the switch and the singletons started at
# it, the schedule with the scheduler that runs it (supervisor), the systemd units of both kinds,
# and the schedule's systemd timers (listed in .shipit/timers, started at the switch).
step_configs() {
  mkdir -p "$R/.shipit"
  if [ "$1" != - ]; then printf %s "$1" | base64 -d > "$R/.shipit/nginx.conf"; fi
  if [ "$2" != - ]; then printf %s "$2" | base64 -d > "$R/.shipit/supervisor.conf"; fi
  if [ "$3" != - ]; then printf %s "$3" | base64 -d > "$R/.shipit/supervisor-once.conf"; fi
  if [ "${5:--}" != - ]; then shipit_unit_files "$5" "$R/.shipit/units"; fi
  if [ "${6:--}" != - ]; then shipit_unit_files "$6" "$R/.shipit/units-once"; fi
  if [ "${7:--}" != - ]; then shipit_unit_files "$7" "$R/.shipit/timers" '\.(timer|service)$'; fi
  if [ "$4" != - ]; then
    printf %s "$4" | base64 -d > "$R/.shipit/schedule.tab"
    printf '%s' "$SHIPIT_SCHEDULER" > "$R/.shipit/scheduler.py"
    mkdir -p "$D/shared/.schedule"
    if [ -n "$APP_USER" ] && [ "$APP_USER" != "$(id -un)" ]; then
      chgrp "$(id -gn "$APP_USER")" "$D/shared/.schedule" 2>/dev/null && chmod 2770 "$D/shared/.schedule" ||
        echo "warning: cannot give $APP_USER's group write access to $D/shared/.schedule"
    fi
  fi
  echo "rendered service configs kept in $R/.shipit"
}

# The release's nginx site with the static and media locations its settings give: the
# template's @@STATIC_URL@@, @@STATIC_ROOT@@, @@MEDIA_URL@@ and @@MEDIA_ROOT@@ are replaced; a
# line naming one that does not apply (no STATIC_ROOT, a URL on another host) is dropped. Paths
# inside the release are written through `current` (and static files through the shared store),
# so the site names no release and a code-only deploy does not change it.
shipit_render_site() {
  static_url=$(shipit_django_value STATIC_URL "$R")
  static_root=$(shipit_django_value STATIC_ROOT "$R")
  media_url=$(shipit_django_value MEDIA_URL "$R")
  media_root=$(shipit_django_value MEDIA_ROOT "$R")
  case "$static_url" in /*) ;; *) static_url= ;; esac
  case "$media_url" in /*) ;; *) media_url= ;; esac
  [ -n "$static_root" ] || static_url=
  [ -n "$media_root" ] || media_url=
  if [ -n "$(shipit_below "$static_root" "$R")" ]; then static_root="$D/shared/.static"; fi
  rel=$(shipit_below "$media_root" "$R")
  if [ -n "$rel" ]; then media_root="$D/current/$rel"; fi
  drop=
  [ -n "$static_url" ] || drop="$drop -e /@@STATIC_/d"
  [ -n "$media_url" ] || drop="$drop -e /@@MEDIA_/d"
  # Word splitting of the drop list is wanted.
  # shellcheck disable=SC2086
  sed $drop \
    -e "s|@@STATIC_URL@@|$(shipit_sed_escape "$static_url")|g" \
    -e "s|@@STATIC_ROOT@@|$(shipit_sed_escape "$static_root")|g" \
    -e "s|@@MEDIA_URL@@|$(shipit_sed_escape "$media_url")|g" \
    -e "s|@@MEDIA_ROOT@@|$(shipit_sed_escape "$media_root")|g" \
    "$R/.shipit/nginx.conf"
}

shipit_sed_escape() { printf '%s' "$1" | sed 's/[|&\\]/\\&/g'; }

# Installs the release's site at $SITE (atomically, keeping the previous one) when it
# differs, and checks nginx's configuration; a rejected site is replaced by the previous one.
step_nginx_check() {
  shipit_require_lock
  if [ ! -f "$R/.shipit/nginx.conf" ]; then
    echo "release $ID keeps no nginx site; nginx is left as it is"
    return 0
  fi
  if [ -f "$R/.shipit/django" ]; then
    shipit_render_site > "$R/.shipit/nginx.site"
  else
    cp "$R/.shipit/nginx.conf" "$R/.shipit/nginx.site"
  fi
  if [ -f "$SITE" ] && cmp -s "$SITE" "$R/.shipit/nginx.site"; then
    echo "nginx site unchanged"
    return 0
  fi
  SITE_TMP="$(dirname "$SITE")/.$(basename "$SITE").shipit-tmp"
  if [ -f "$SITE" ]; then cp -p "$SITE" "$SITE_BACKUP"; else rm -f "$SITE_BACKUP"; fi
  cp "$R/.shipit/nginx.site" "$SITE_TMP"
  : > "$SITE_CHANGED"
  mv -f "$SITE_TMP" "$SITE"
  if ! eval "$NGINX_TEST"; then
    echo "nginx rejected the new site $SITE; the previous one is restored"
    shipit_restore_site
    exit 1
  fi
  echo "nginx site installed at $SITE and checked"
}

# Options the installed gunicorn needs: from 25 on, every gunicorn of a user shares one control
# socket unless told not to, and the old and new releases' servers run side by side.
shipit_gunicorn_args() {
  version=$(find "$R/.venv/" -maxdepth 4 -type d -name 'gunicorn-*.dist-info' 2>/dev/null |
    sed -n 's/.*gunicorn-\([0-9]*\)\..*/\1/p' | head -n 1)
  if [ "${version:-0}" -ge 25 ]; then printf '%s\n' --no-control-socket; fi
}

# Why the program is not running, when the process manager says it stopped, keeps dying, or
# restarted it (another pid than the first one seen: the first process died). SEEN_PID is
# kept by the caller.
shipit_app_dead() {
  if [ "$MANAGER" = systemd ]; then
    shipit_systemd_dead "$WEB_UNIT"
    return
  fi
  status=$(shipit_ctl status "$PROGRAM" 2>&1) || true
  case "$status" in
    *FATAL* | *BACKOFF* | *EXITED*) printf '%s\n' "$status"; return 0 ;;
  esac
  pid=$(printf '%s\n' "$status" | sed -n 's/.* pid \([0-9]*\),.*/\1/p')
  if [ -n "$pid" ] && [ -n "$SEEN_PID" ] && [ "$pid" != "$SEEN_PID" ]; then
    printf '%s (restarted: pid %s died)\n' "$status" "$SEEN_PID"
    return 0
  fi
  return 1
}

shipit_app_log() {
  if [ "$MANAGER" = systemd ]; then
    shipit_systemd_log "$WEB_UNIT"
    return 0
  fi
  log=$(shipit_ctl tail -16000 "$PROGRAM" 2>/dev/null) || log=
  printf '%s\n' "$log" | grep -v '\] \[INFO\] ' | tail -n 12
  # The exception that stopped the app, which a long traceback can push out of view.
  cause=$(printf '%s\n' "$log" | grep -E '^[A-Za-z_.]*(Error|Exception)(: |$)' |
    grep -v HaltServer | tail -n 1)
  if [ -n "$cause" ]; then echo "the app server died with: $cause"; fi
}

# shipit_program_conf FILE: a release's supervisor program FILE as installed. A release kept
# from before programs were named PROJECT.TARGET.RELEASE (a rollback to it) names its program
# PROJECT-TARGET-RELEASE: it runs under the current name, $PROGRAM.
shipit_program_conf() {
  sed "s/^\[program:[A-Za-z0-9_-]*-$ID\]\$/[program:$PROGRAM]/" "$1"
}

# Starts the programs kept in $R/.shipit/supervisor.conf and waits until the web app server
# (on a web host) answers and every process runs; fails as soon as the process manager reports
# one dead.
step_start_app() {
  shipit_require_lock
  if [ "$MANAGER" = systemd ]; then
    shipit_systemd_start
    return 0
  fi
  [ -f "$R/.shipit/supervisor.conf" ] || { echo "release $ID keeps no supervisor program"; exit 1; }
  shipit_gunicorn_args > "$R/.shipit/gunicorn.args"
  TMP="$CONFD/.$PROGRAM.conf.tmp"
  shipit_program_conf "$R/.shipit/supervisor.conf" > "$TMP"
  mv -f "$TMP" "$PROGRAM_CONF"
  # Word splitting of the program list is wanted.
  # shellcheck disable=SC2046
  shipit_ctl update $(shipit_programs "$PROGRAM_CONF")
  DEADLINE=$(($(date +%s) + HEALTH_TIMEOUT))
  if [ "$WEB" = 1 ]; then shipit_wait_web; fi
  shipit_wait_processes "$PROGRAM_CONF"
}

shipit_wait_web() {
  polls=0
  SEEN_PID=
  while :; do
    if STATUS=$(shipit_probe "$R/.shipit/app.sock" 2>&1); then
      echo "health check before the switch: $STATUS"
      return 0
    fi
    if shipit_migrate_pending; then return 0; fi
    polls=$((polls + 1))
    if [ $((polls % 5)) -eq 0 ]; then
      if DEAD=$(shipit_app_dead); then
        shipit_app_log
        echo "the new app server died before answering: $DEAD"
        exit 1
      fi
      if [ -z "$SEEN_PID" ] && [ "$MANAGER" != systemd ]; then
        SEEN_PID=$(shipit_ctl pid "$PROGRAM" 2>/dev/null | grep -x '[1-9][0-9]*') || SEEN_PID=
      fi
    fi
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
      if [ "$MANAGER" = systemd ]; then shipit_systemd_status "$WEB_UNIT"; else shipit_ctl status "$PROGRAM" || true; fi
      shipit_app_log
      echo "the new app server failed its health check on $R/.shipit/app.sock within ${HEALTH_TIMEOUT}s: $STATUS"
      exit 1
    fi
    sleep 0.1
  done
}

# shipit_wait_processes FILE: waits until every process program FILE defines (all but the web
# app server) is RUNNING, which supervisor says once a process stayed up for its startsecs;
# fails as soon as one is FATAL, BACKOFF or EXITED, with the last lines it printed.
shipit_wait_processes() {
  groups=$(shipit_programs "$1" | grep -vxF "$PROGRAM") || return 0
  while :; do
    pending=
    for group in $groups; do
      status=$(shipit_ctl status "$group:*" 2>&1) || true
      dead=$(printf '%s\n' "$status" | grep -E ' (FATAL|BACKOFF|EXITED) ' | head -n 1)
      if [ -n "$dead" ] && shipit_migrate_pending; then return 0; fi
      if [ -n "$dead" ]; then
        shipit_ctl tail -4000 "${dead%% *}" 2>/dev/null | tail -n 12
        echo "process $group did not start: $dead"
        exit 1
      fi
      if printf '%s\n' "$status" | grep -qv ' RUNNING '; then pending="$pending $group"; fi
    done
    if [ -z "$pending" ]; then
      echo "running: $(printf '%s' "$groups" | tr '\n' ' ')"
      return 0
    fi
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
      echo "not running within ${HEALTH_TIMEOUT}s:$pending"
      exit 1
    fi
    sleep 0.2
  done
}

step_prepared() { shipit_state prepared; }

# Prepared, and about to switch in the same exec: ask shipit whether to go on, on the script's
# original stdin (fd 3). It answers `stop` after Ctrl-C; no answer at all (the connection is
# gone) is a stop too. Either way nothing is switched and the prepare cleanup runs.
step_gate() {
  shipit_mark gate
  answer=
  read -r answer <&3 || true
  if [ "$answer" != switch ]; then
    echo "stopped before the switch: shipit asked to stop"
    shipit_fact stopped 1
    exit 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Steps of `switch`.

step_check_lock() {
  shipit_own_lock || { echo "the lock on $D is no longer ours; not switching"; shipit_fact lock_lost 1; exit 1; }
}

# rename(2) of a fresh symlink over `current`: readers see the old or the new release, never
# nothing.
step_switch() {
  ln -sfn "releases/$ID" "$D/.current.$ID"
  mv -fT "$D/.current.$ID" "$D/current"
  echo "current -> releases/$ID (was ${PREVIOUS:-nothing})"
  shipit_bridge_static "$R" force
}

step_reload_nginx() {
  if [ -f "$SITE_CHANGED" ]; then
    eval "$NGINX_RELOAD"
    echo "nginx reloaded"
  else
    echo "nginx site unchanged; no reload needed"
  fi
}

# Checks the live release through `current`; a failure makes the switch script switch back.
step_health_check() {
  TRIES=$HEALTH_RETRIES
  while :; do
    if STATUS=$(shipit_probe "$D/current/.shipit/app.sock" 2>&1); then
      echo "health check after the switch: $STATUS"
      return 0
    fi
    TRIES=$((TRIES - 1))
    if [ "$TRIES" -le 0 ]; then
      echo "release $ID failed its health check after the switch: $STATUS"
      exit 1
    fi
    sleep 1
  done
}

# Records the new release as live: from here on the switch is committed and a failure undoes
# nothing.
step_finish() {
  shipit_require_lock
  shipit_state live
  if [ -n "$PREVIOUS" ] && [ -d "$D/$PREVIOUS/.shipit" ] && [ "$D/$PREVIOUS" != "$R" ]; then
    # Rolling back leaves a release rolled back; rolling forward (`rollback --to` a newer one)
    # leaves a good one, which a later rollback may still go to.
    left=good
    if [ "$OP" = rollback ] && [ "${PREVIOUS##*/}" -gt "$ID" ]; then left=rolled_back; fi
    printf '%s\n' "$left" > "$D/$PREVIOUS/.shipit/state"
  fi
  rm -f "$SITE_CHANGED" "$SITE_BACKUP"
  for dir in "$D"/releases/*; do
    if [ "$dir" = "$R" ] || [ ! -f "$dir/.shipit/state" ]; then continue; fi
    state=
    read -r state < "$dir/.shipit/state" || true
    case $state in
      preparing|prepared)
        echo failed > "$dir/.shipit/state"
        echo "marked ${dir##*/} failed: a deploy of it never finished"
        ;;
    esac
  done
  # Keep the three most recently used archives: a redeploy of one of them uploads nothing.
  # Archive names are sha256 hex: ls is safe here.
  # shellcheck disable=SC2012
  for old in $(cd "$D/.shipit/archives" && ls -1t -- *.tar.gz 2>/dev/null | tail -n +4); do
    rm -f "$D/.shipit/archives/$old"
  done
  if [ "$OP" = rollback ]; then shipit_log "ok (from ${PREVIOUS##*/})"; else shipit_log ok; fi
}

# step_prune ID...: removes releases the keep policy chose, then gives the lock back. A deploy
# right after another may choose a release whose app servers still stop in the background (its
# begin does not wait for them): those are waited for first.
step_prune() {
  shipit_require_lock
  stopping=" $(shipit_draining_releases | tr '\n' ' ')"
  for id in "$@"; do
    case $stopping in
      *" $id "*)
        step_reap wait
        break
        ;;
    esac
  done
  shipit_remove_releases "$@"
  if [ "$#" -gt 0 ]; then OP=prune shipit_log "removed $*"; fi
  shipit_unlock
}

# shipit_drain PROGRAM...: the programs step_stop_old_app took the configs of get SIGTERM now
# and drain in the background, each within its stop timeout: the run does not wait for them.
# $D/.shipit/draining/ID records them (`pid=`, `start=` of the background job, `program=` lines)
# until step_reap of a later run has seen them gone. When this release's singletons take over
# from old ones, the stop is waited for here: never two of them at once.
shipit_drain() {
  if [ -f "$R/.shipit/supervisor-once.conf" ] && [ "$LIVE" = "$ID" ]; then
    shipit_ctl update "$@" || echo "warning: supervisor could not stop $*"
    return 0
  fi
  mkdir -p "$D/.shipit/draining"
  record="$D/.shipit/draining/$ID"
  rm -f "$record.done"
  (
    trap '' HUP PIPE
    if shipit_ctl update "$@" > "$record.log" 2>&1; then : > "$record.done"; fi
  ) </dev/null >/dev/null 2>&1 3<&- &
  {
    printf 'pid=%s\nstart=%s\n' "$!" "$(shipit_starttime "$!")"
    printf 'program=%s\n' "$@"
  } > "$record.tmp"
  mv -f "$record.tmp" "$record"
  echo "stopping in the background, each within its stop timeout: $*"
}

# Stops every other release's programs of this project and target gracefully (within each
# program's stop timeout), except those of the release `current` points at now, then starts the
# live release's singletons (`once` processes, kept in .shipit/supervisor-once.conf on the
# primary): never two of them at once. Never fails: the release that matters is already live.
# Programs are named PROJECT.TARGET.RELEASE[.PROCESS]: neither name may contain a dot, so the
# glob of one project and target matches no other's. Programs named by shipit before that
# (PROJECT-TARGET-RELEASE, ambiguous: `hello` + `a-b` and `hello-a` + `b`) are stopped only
# when their config runs a release of this deploy_to.
step_stop_old_app() {
  LIVE=$(readlink "$D/current" 2>/dev/null | sed 's#.*/##')
  # Both managers' old programs: a target moved from one to the other stops the old manager's
  # programs at its first switch under the new one.
  if [ "$MANAGER" = systemd ] || [ -d "$D/.shipit/systemd" ]; then shipit_systemd_stop_old; fi
  [ -d "$CONFD" ] || return 0
  OLD=
  LEGACY_GLOB=$(printf '%s' "$PROGRAM_GLOB" | sed 's/\./-/; s/\./-/')
  # The globs are globs on purpose.
  # shellcheck disable=SC2086
  for conf in "$CONFD"/$PROGRAM_GLOB "$CONFD"/$ONCE_GLOB "$CONFD"/$LEGACY_GLOB; do
    if [ ! -e "$conf" ] || [ "$conf" = "$PROGRAM_CONF" ]; then continue; fi
    name=${conf##*/}
    name=${name%.conf}
    name=${name%.once}
    release=${name##*[.-]}
    if [ -n "$LIVE" ] && [ "$release" = "$LIVE" ]; then continue; fi
    case "$name" in
      *.*) ;;
      *) grep -Fqx "directory=$D/releases/$release" "$conf" || continue ;;
    esac
    OLD="$OLD $(shipit_programs "$conf" | tr '\n' ' ')"
    rm -f "$conf"
  done
  if [ -n "$(printf '%s' "$OLD" | tr -d ' ')" ]; then
    # Word splitting of the program list is wanted.
    # shellcheck disable=SC2086
    shipit_drain $OLD
  elif [ "$MANAGER" = supervisor ]; then
    echo "no other app server to stop"
  fi
  if [ -f "$R/.shipit/supervisor-once.conf" ] && [ "$LIVE" = "$ID" ]; then
    cp "$R/.shipit/supervisor-once.conf" "$ONCE_CONF.tmp"
    mv -f "$ONCE_CONF.tmp" "$ONCE_CONF"
    # shellcheck disable=SC2046
    shipit_ctl update $(shipit_programs "$ONCE_CONF") ||
      echo "warning: supervisor could not start the singletons of $ID"
  fi
}

# ---------------------------------------------------------------------------------------------
# Steps of `rollback`.

# The migrations the database's table records as applied, one `app.name` a line, whatever
# code knows them; used when `current`'s release is gone and cannot be asked.
SHIPIT_APPLIED='import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import django
django.setup()
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
    print("[X]  %s.%s" % (app, name))
'

# Whether the plans the live release and release $ID recorded when they migrated
# (.shipit/showmigrations) answer the rollback's comparison: both recorded one, and the database
# is as the live release left it (its record of the migration table, the apps and the database
# still hold, read with the live release's settings).
shipit_plans_recorded() {
  L="$D/current"
  [ -f "$L/.shipit/showmigrations" ] && [ -f "$R/.shipit/showmigrations" ] &&
    [ -f "$L/.shipit/migrated" ] || return 1
  (umask 027 && shipit_release_python "$L" "$SHIPIT_DB_STATE" "$D/.shipit/database.now") || return 1
  ! grep -q '^applied=unknown' "$D/.shipit/database.now" &&
    grep -v '^migrations=' "$L/.shipit/migrated" | cmp -s - "$D/.shipit/database.now"
}

# Reports the migrations the database has applied (asked of the live release, or of the
# database's own table when `current` dangles) and those the target release knows, in plan order;
# from what the releases recorded when they migrated, when that still holds.
step_migrations() {
  if [ -d "$D/current/" ] && shipit_plans_recorded; then
    echo "migrations: as recorded by $(readlink "$D/current" | sed 's#.*/##') and $ID (the database has not been migrated since)"
    LIVE=$(cat "$D/current/.shipit/showmigrations")
  elif [ -d "$D/current/" ]; then
    LIVE=$(shipit_manage "$D/current" showmigrations --plan 2>&1) ||
      { printf '%s\n' "$LIVE"; echo "showmigrations failed in the live release"; exit 1; }
  else
    echo "current's release is gone: reading the applied migrations through release $ID"
    LIVE=$(shipit_release_python "$R" "$SHIPIT_APPLIED" 2>&1) ||
      { printf '%s\n' "$LIVE"; echo "cannot read the applied migrations through release $ID"; exit 1; }
  fi
  printf '%s\n' "$LIVE" | sed -n 's/^\[X\]  *//p' | while read -r m; do shipit_fact "applied:$m" 1; done
  if [ -f "$R/.shipit/showmigrations" ]; then
    KNOWN=$(cat "$R/.shipit/showmigrations")
  else
    KNOWN=$(shipit_manage "$R" showmigrations --plan 2>&1) ||
      { printf '%s\n' "$KNOWN"; echo "showmigrations failed in release $ID"; exit 1; }
  fi
  printf '%s\n' "$KNOWN" | sed -n 's/^\[.\]  *//p' | {
    n=0
    while read -r m; do
      n=$((n + 1))
      shipit_fact "known:$(printf %06d "$n")" "$m"
    done
  }
}

# step_unapply APP TO [APP TO]...: unapplies with the live release's code, which knows how.
step_unapply() {
  shipit_require_lock
  while [ "$#" -ge 2 ]; do
    shipit_manage "$D/current" migrate "$1" "$2" --noinput
    shift 2
  done
}

# A rollback that does not complete after unapplying migrates the live schema forward again
# (UNAPPLIED is set on the primary from the moment unapplying is planned: migrating forward
# when nothing was unapplied yet applies nothing).
shipit_remigrate() {
  [ "$UNAPPLIED" = 1 ] || return 0
  if [ -L "$D/current" ] && shipit_manage "$D/current" migrate --noinput; then
    echo "migrated the live release's schema forward again"
  fi
}

# ---------------------------------------------------------------------------------------------
# Steps of `releases --prune`.

step_inventory() {
  [ -d "$D/releases" ] || { echo "nothing deployed under $D"; exit 0; }
  shipit_inventory sizes
}

step_require_releases() {
  [ -d "$D/releases" ] || { echo "nothing is deployed under $D"; exit 1; }
  shipit_require_current_link
}

step_remove() {
  shipit_require_lock
  shipit_remove_releases "$@"
  if [ "$#" -gt 0 ]; then shipit_log "removed $*"; else shipit_log "removed nothing"; fi
  shipit_unlock
}

# ---------------------------------------------------------------------------------------------
# `shipit check`: a read-only doctor. Each check reports one fact, `check:NAME` = `ok|fail|skip
# DETAIL`, and never fails the step: shipit prints them with a hint each and decides the exit
# status. Nothing here writes anything on the host.

# shipit_check NAME STATUS DETAIL (on one line).
shipit_check() { shipit_fact "check:$1" "$2 $(printf '%s' "$3" | tr '\n' ' ')"; }

# The nearest existing directory at or above $1.
shipit_existing_dir() {
  dir=$1
  while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
  printf '%s' "$dir"
}

# step_check SHARED_FILE...: every check of the host.
step_check() {
  PATH="$PATH:$HOME/.local/bin"
  shipit_check_deploy_to
  shipit_check_lock
  shipit_check_python
  shipit_check_app
  shipit_check_nginx
  shipit_check_disk
  shipit_check_shared "$@"
  shipit_check_django
}

shipit_check_deploy_to() {
  me=$(id -un)
  if [ -d "$D" ]; then
    for dir in "$D" "$D/releases" "$D/shared" "$D/venvs" "$D/.shipit"; do
      if [ -e "$dir" ] && [ ! -w "$dir" ]; then
        shipit_check deploy_to fail "$dir is not writable by $me"
        return 0
      fi
    done
    shipit_check deploy_to ok "$D is writable by $me"
  else
    parent=$(shipit_existing_dir "$D")
    if [ -w "$parent" ]; then
      shipit_check deploy_to ok "$D does not exist yet; $me can create it in $parent"
    else
      shipit_check deploy_to fail "$D does not exist and $me cannot create it: $parent is not writable"
    fi
  fi
}

shipit_check_lock() {
  if [ ! -d "$LOCK" ]; then
    shipit_check lock ok "free"
  elif [ "$(shipit_lock_field held)" = 1 ]; then
    shipit_check lock fail "held $(shipit_lock_holder) (\`shipit lock release\` frees it)"
  elif shipit_lock_live; then
    shipit_check lock fail "held $(shipit_lock_holder), and that run is still going"
  else
    shipit_check lock fail "left behind $(shipit_lock_holder); that run is gone"
  fi
}

# The interpreter a deploy would use and the installer it would build the venv with, found as
# shipit_python and step_virtualenv find them, installing nothing.
shipit_check_python() {
  uv=$(command -v uv 2>/dev/null) || uv=
  case "$PY" in
    [0-9]*)
      if [ -z "$uv" ]; then
        if python3 -m pip --version >/dev/null 2>&1; then
          shipit_check python ok "python $PY through uv, which is not installed: a deploy installs it with pip"
        else
          shipit_check python fail "python $PY needs uv, which is not installed, and python3 has no pip to install it"
        fi
      elif found=$(uv python find --no-project "$PY" 2>/dev/null); then
        shipit_check python ok "python $PY is $found ($("$found" -V 2>&1))"
      else
        shipit_check python ok "python $PY is not installed: a deploy installs it with uv (needs network)"
      fi
      ;;
    *)
      if ! found=$(command -v "$PY" 2>/dev/null) || ! version=$("$found" -V 2>&1); then
        shipit_check python fail "python $PY is not installed (not found on PATH=$PATH)"
      elif [ -z "$uv" ] || [ "$INSTALLER" = pip ] && ! "$found" -c 'import venv, ensurepip' 2>/dev/null; then
        shipit_check python fail "$found ($version) cannot create a virtualenv with pip: its venv/ensurepip module is missing"
      else
        shipit_check python ok "$found ($version)"
      fi
      ;;
  esac
  case "$INSTALLER" in
    pip) shipit_check uv skip "installer = pip" ;;
    uv)
      if [ -n "$uv" ]; then shipit_check uv ok "$uv ($(uv --version 2>&1))"
      else shipit_check uv fail "installer = uv, but uv is not installed"; fi
      ;;
    *)
      if [ -n "$uv" ]; then shipit_check uv ok "$uv ($(uv --version 2>&1))"
      else shipit_check uv ok "not installed: virtualenvs are built with pip"; fi
      ;;
  esac
}

# The process manager, reached with the configured commands. Supervisor is the one today; another
# manager adds its own shipit_check_<manager> and a branch here.
shipit_check_app() {
  if [ "$APP" != 1 ]; then
    shipit_check app skip "no process manager configured: shipit starts no app server"
    return 0
  fi
  if [ "$MANAGER" = systemd ]; then
    shipit_check_systemd
    return 0
  fi
  shipit_check_supervisor
}

shipit_check_supervisor() {
  if [ ! -d "$CONFD" ] || [ ! -w "$CONFD" ]; then
    shipit_check app fail "supervisor conf_dir $CONFD is missing or not writable by $(id -un)"
  elif out=$(shipit_ctl pid 2>&1) && printf '%s\n' "$out" | grep -qx '[1-9][0-9]*'; then
    shipit_check app ok "supervisord (pid $out) answers \`$CTL\`; programs go to $CONFD"
  else
    shipit_check app fail "\`$CTL pid\` failed: $(printf '%s\n' "$out" | tail -n 1)"
  fi
}

shipit_check_nginx() {
  if [ "$NGINX" != 1 ]; then
    shipit_check nginx skip "nginx is not managed by shipit"
    return 0
  fi
  site_dir=$(dirname "$SITE")
  if [ ! -d "$site_dir" ] || [ ! -w "$site_dir" ]; then
    shipit_check nginx fail "the site's directory $site_dir is missing or not writable by $(id -un)"
  elif out=$(eval "$NGINX_TEST" 2>&1); then
    shipit_check nginx ok "\`$NGINX_TEST\` passed"
  else
    shipit_check nginx fail "\`$NGINX_TEST\` failed: $(printf '%s\n' "$out" | grep -v '^\s*$' | tail -n 2)"
  fi
}

# Room for one more archive and virtualenv: as much as the live release and its venv take, and
# at least 256 MiB.
shipit_check_disk() {
  dir=$(shipit_existing_dir "$D")
  free=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
  need=262144
  if [ -L "$D/current" ]; then
    used=$(du -sk "$D/current/" "$D/current/.venv/" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    if [ "$used" -gt "$need" ]; then need=$used; fi
  fi
  if [ "${free:-0}" -ge "$need" ]; then
    shipit_check disk ok "$((free / 1024)) MiB free in $dir, about $((need / 1024)) MiB needed"
  else
    shipit_check disk fail "only $((${free:-0} / 1024)) MiB free in $dir; a release and its virtualenv need about $((need / 1024)) MiB"
  fi
}

# shipit_check_shared FILE...: the shared files a release links exist (a deploy would create
# an empty one: a settings file the app then runs without).
shipit_check_shared() {
  if [ "$#" -eq 0 ]; then
    shipit_check shared skip "no shared_files"
    return 0
  fi
  missing=
  for file in "$@"; do
    [ -e "$D/shared/$file" ] || missing="$missing $file"
  done
  if [ -n "$missing" ]; then
    shipit_check shared fail "missing in $D/shared:$missing"
  else
    shipit_check shared ok "all $# present in $D/shared"
  fi
}

# Python run by shipit_check_django: whether ALLOWED_HOSTS (as Django applies it) accepts the
# health check's Host header.
SHIPIT_ALLOWED_HOST='import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import django
django.setup()
from django.conf import settings
from django.http.request import split_domain_port, validate_host
host = sys.argv[2]
allowed = list(settings.ALLOWED_HOSTS)
if settings.DEBUG and not allowed:
    allowed = [".localhost", "127.0.0.1", "[::1]"]
domain, port = split_domain_port(host)
ok = bool(domain) and validate_host(domain, allowed)
print("Host %s is %s by ALLOWED_HOSTS = %r" % (host, "accepted" if ok else "NOT accepted", allowed))
sys.exit(0 if ok else 1)
'

# `manage.py check --deploy` and ALLOWED_HOSTS, in the live release with its venv and
# environment.
shipit_check_django() {
  if [ ! -L "$D/current" ] || [ ! -x "$D/current/.venv/bin/python" ]; then
    shipit_check django skip "nothing deployed yet"
    shipit_check allowed_hosts skip "nothing deployed yet"
    return 0
  fi
  live=$(readlink "$D/current")
  if out=$(shipit_manage "$D/current" check --deploy 2>&1); then
    ids=$(printf '%s\n' "$out" | sed -n 's/^.*: (\([a-z_.]*\.W[0-9]*\)).*$/\1/p' | tr '\n' ' ')
    shipit_check django ok "$live: $(printf '%s\n' "$out" | tail -n 1)${ids:+ warnings: $ids}"
  else
    shipit_check django fail "$live: $(printf '%s\n' "$out" | grep -E 'ERROR|Error|error' | tail -n 3)"
  fi
  if out=$(shipit_release_python "$D/current" "$SHIPIT_ALLOWED_HOST" "$HEALTH_HOST" 2>&1); then
    shipit_check allowed_hosts ok "$out"
  else
    shipit_check allowed_hosts fail "$(printf '%s\n' "$out" | tail -n 1)"
  fi
}

# ---------------------------------------------------------------------------------------------
# `shipit maintenance`: the page in $D/.shipit/maintenance.html, outside every release, which the
# nginx site answers every request but the health check with (status 503) while it exists.
# Turning it on is two steps, so that every host has the page ready before any shows it.

MAINTENANCE_PAGE=.shipit/maintenance.html

# step_maintenance_prepare BASE64: checks that the installed site knows maintenance mode and
# writes the page beside where it goes.
step_maintenance_prepare() {
  [ "$NGINX" = 1 ] || { echo "maintenance mode needs the nginx site shipit installs: this target has no [nginx]"; exit 1; }
  [ -f "$SITE" ] || { echo "no nginx site at $SITE yet: deploy first"; exit 1; }
  grep -qF "$D/$MAINTENANCE_PAGE" "$SITE" || {
    echo "the nginx site $SITE does not know maintenance mode: deploy once with shipit's nginx.conf.j2, or add its maintenance block to your own"
    exit 1
  }
  mkdir -p "$D/.shipit"
  (
    umask 022
    printf '%s' "$1" | base64 -d > "$D/$MAINTENANCE_PAGE.next"
  )
}

step_maintenance_on() {
  mv -f "$D/$MAINTENANCE_PAGE.next" "$D/$MAINTENANCE_PAGE"
  shipit_log on
  echo "maintenance mode on: nginx answers 503 with $D/$MAINTENANCE_PAGE, except on $HEALTH_PATH"
}

step_maintenance_off() {
  if [ -f "$D/$MAINTENANCE_PAGE" ]; then
    rm -f "$D/$MAINTENANCE_PAGE" "$D/$MAINTENANCE_PAGE.next"
    shipit_log off
    echo "maintenance mode off"
  else
    echo "maintenance mode was not on"
  fi
}

# ---------------------------------------------------------------------------------------------
# `shipit logs`: the live release's app logs, read-only.

# shipit_log_files PROCESS: the log files of PROCESS of the live release, one per line. The
# process manager decides where they are: supervisor's are the stdout_logfile and
# stderr_logfile of the program the release keeps in .shipit/supervisor.conf. systemd's go to
# the journal: step_logs hands over to shipit_systemd_logs.
shipit_log_files() {
  [ -L "$D/current" ] || { echo "nothing is deployed under $D"; return 1; }
  [ "$APP" = 1 ] || { echo "no process manager is configured: shipit runs no app server here"; return 1; }
  shipit_supervisor_log_files "$1"
}

shipit_supervisor_log_files() {
  # PROJECT.TARGET.RELEASE of the live release (PROGRAM_GLOB is PROJECT.TARGET.[0-9]...).
  live="$(printf '%s' "$PROGRAM_GLOB" | sed 's/\.\[0-9\].*//').$(readlink "$D/current" | sed 's#.*/##')"
  case "$1" in
    web) section=$live ;;
    *) section="$live.$1" ;;
  esac
  conf="$D/current/.shipit/supervisor.conf"
  [ -f "$conf" ] || { echo "the live release keeps no supervisor program ($conf)"; return 1; }
  once="$D/current/.shipit/supervisor-once.conf"
  [ -f "$once" ] || once=/dev/null
  # The log files of the program's section, in either of the release's program files.
  files=$(awk -v want="[program:$section]" '
    /^\[/ { inside = ($0 == want); next }
    inside && sub(/^std(out|err)_logfile *= */, "") && $0 != "NONE" && $0 != "AUTO" && $0 != "" { print }
  ' "$conf" "$once")
  if [ -z "$files" ]; then
    known=$(cat "$conf" "$once" |
      sed -n "s/^\[program:$live\.\{0,1\}\(.*\)\]\$/\1/p" | sed 's/^$/web/' | tr '\n' ' ')
    echo "no process \`$1\` in this target; its processes: $known"
    return 1
  fi
  printf '%s\n' "$files"
}

# step_logs PROCESS LINES FOLLOW ERE: the last LINES lines of each log file of PROCESS (those
# matching ERE, when it is not empty) and, when FOLLOW is 1, every new line until shipit goes:
# its end of the connection (the script's stdin, fd 3) closes, the script ends, and tail --pid
# ends with it.
step_logs() {
  if [ "$APP" = 1 ] && [ "$MANAGER" = systemd ]; then
    shipit_systemd_logs "$@"
    return 0
  fi
  files=$(shipit_log_files "$1") || { printf '%s\n' "$files"; exit 1; }
  script_pid=$$
  set -f
  IFS='
'
  if [ "$3" = 1 ]; then
    # The file list is split at newlines on purpose.
    # shellcheck disable=SC2086
    tail -q -n "$2" -F --pid="$script_pid" -- $files 2>/dev/null | shipit_grep "$4" &
    while read -r _ <&3; do :; done
  else
    # shellcheck disable=SC2086
    tail -q -n "$2" -- $files | shipit_grep "$4"
  fi
}

# shipit_grep ERE: the lines of stdin matching ERE (all of them when it is empty), line by line.
shipit_grep() {
  if [ -n "$1" ]; then grep --line-buffered -E -e "$1" || true; else cat; fi
}

# ---------------------------------------------------------------------------------------------
# Operator commands (`shipit run`, `shipit console`): in the live release, as its hooks ran.

# Enters the release `current` points at: its directory, its environment (.shipit/env), its
# virtualenv first on PATH, SHIPIT_RELEASE and DJANGO_SETTINGS_MODULE exported.
shipit_enter_current() {
  C=$(cd "$D/current" 2>/dev/null && pwd -P) ||
    { echo "nothing is deployed under $D (no current release)"; return 1; }
  shipit_load_env "$C"
  cd "$C" || return 1
  PATH="$C/.venv/bin:$PATH"
  SHIPIT_RELEASE=$(cat "$C/.shipit/release" 2>/dev/null) || SHIPIT_RELEASE=${C##*/}
  export PATH DJANGO_SETTINGS_MODULE SHIPIT_RELEASE
}

step_require_current() {
  [ -L "$D/current" ] || { echo "nothing is deployed under $D (no current release)"; exit 1; }
}

# step_run COMMAND: an operator's command, as a shell runs it (no `set -e` or `set -u`); the
# step's status is the command's.
step_run() {
  shipit_enter_current || exit 1
  set +eu
  eval "$1"
}

# shipit_console COMMAND: the whole of a `shipit console` script, run on a terminal (no step
# markers: a person reads it). The script file shipit uploaded for it removes itself first.
shipit_console() {
  case "$0" in *.shipit-console-*.sh) rm -f -- "$0" ;; esac
  shipit_enter_current || exit 1
  set +eu
  eval "$1"
}

# ---------------------------------------------------------------------------------------------
# Giving up: what a script runs when one of its steps failed, and the scripts that end a run on
# hosts that did nothing wrong.

# Gives the lock back at the end of a run that switched (a rollback; a deploy's prune does).
step_unlock() { shipit_unlock; }

# Gives the lock back, changing nothing else: a run that changed nothing on this host leaves
# no record here.
step_release_lock() { shipit_unlock; }

# step_abort REASON: abandons this run's prepared release on this host because of another host.
step_abort() {
  shipit_stop_background
  if ! shipit_own_lock; then
    echo "the lock on $D is no longer ours; leaving everything as it is"
    shipit_stop_new_app
    return 0
  fi
  shipit_remigrate
  shipit_undo_prepare
  shipit_state failed
  shipit_log "aborted: $1"
  shipit_unlock
  echo "release $ID abandoned: $1"
}

# A step before the switch failed.
on_prepare_failure() {
  shipit_stop_background
  if ! shipit_own_lock; then
    shipit_stop_new_app
    return 0
  fi
  shipit_remigrate
  shipit_undo_prepare
  if [ "$OP" = deploy ] && [ "$SHIPIT_FAILED_STEP" = unpack ]; then
    rm -rf "$R"
  elif [ "$OP" = deploy ]; then
    shipit_state failed
  fi
  shipit_log "failed: $SHIPIT_FAILED_STEP"
  shipit_unlock
}

# A step of the switch failed: switch back, unless the switch is committed (the new release was
# recorded live) or the lock is no longer ours (then nothing here is ours to undo).
on_switch_failure() {
  if ! shipit_own_lock; then
    echo "the lock on $D is no longer ours; not switching back"
    shipit_stop_new_app
    return 0
  fi
  if [ "$(cat "$R/.shipit/state" 2>/dev/null)" = live ] &&
    [ "$(readlink "$D/current" 2>/dev/null)" = "releases/$ID" ]; then
    echo "release $ID is live; step $SHIPIT_FAILED_STEP failed after the switch, nothing is undone"
    shipit_unlock
    return 0
  fi
  shipit_switch_back
  shipit_undo_prepare
  shipit_remigrate
  if [ "$NGINX" = 1 ]; then eval "$NGINX_RELOAD" >/dev/null 2>&1 || true; fi
  if [ "$OP" = deploy ]; then shipit_state failed; fi
  shipit_log "failed: $SHIPIT_FAILED_STEP (switched back)"
  shipit_unlock
}

# A step of `begin` or a lock-only script failed.
on_lock_failure() { shipit_unlock; }
