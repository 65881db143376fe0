# shellcheck shell=sh
# The supervisor process manager (pm_supervisor_*, see pm.sh): one program file per release,
# PROJECT.TARGET.RELEASE.conf in CONFD, with the web app server and the processes, another
# (PROJECT.TARGET.RELEASE.once.conf, installed at the switch) with the singletons; both
# installed with `supervisorctl update`. Programs are named PROJECT.TARGET.RELEASE[.PROCESS]:
# neither name may contain a dot, so the glob of one project and target matches no other's
# (and programs named by shipit before that, PROJECT-TARGET-RELEASE, are matched too). A
# program file is this deploy_to's only when its programs run in a release of it
# (shipit_supervisor_ours): two checkouts of one project and target on a host, or a staging
# copy, share the names but never each other's programs.

# Every host can run supervisord (the last resort of `auto`).
pm_supervisor_here() { true; }

pm_supervisor_init() {
  PROGRAM_CONF="$CONFD/$PROGRAM.conf"
  ONCE_CONF="$CONFD/$PROGRAM.once.conf"
  ONCE_GLOB="${PROGRAM_GLOB%.conf}.once.conf"
}

shipit_ctl() { eval "$CTL" '"$@"'; }

# The control command is on the deploy user's PATH.
pm_supervisor_require() { shipit_require_command "[targets.$TARGET.supervisor] ctl" "$CTL"; }

# The program (group) names a supervisor config FILE defines, one a line.
shipit_programs() { sed -n 's/^\[program:\(.*\)\]$/\1/p' "$1" 2>/dev/null; }

# shipit_program_conf FILE: a release's supervisor program FILE as installed. A release kept
# from before programs were named PROJECT.TARGET.RELEASE (a rollback to it) names its program
# PROJECT-TARGET-RELEASE: it runs under the current name, $PROGRAM.
shipit_program_conf() {
  sed "s/^\[program:[A-Za-z0-9_-]*-$ID\]\$/[program:$PROGRAM]/" "$1"
}

# Installs the programs kept in $R/.shipit/supervisor.conf and starts them.
pm_supervisor_start() {
  [ -f "$R/.shipit/supervisor.conf" ] || { echo "release $ID keeps no supervisor program"; exit 1; }
  TMP="$CONFD/.$PROGRAM.conf.tmp"
  shipit_program_conf "$R/.shipit/supervisor.conf" > "$TMP"
  mv -f "$TMP" "$PROGRAM_CONF"
  # Word splitting of the program list is wanted.
  # shellcheck disable=SC2046
  shipit_ctl update $(shipit_programs "$PROGRAM_CONF")
}

# The web program's pid, as supervisor reports it now.
pm_supervisor_seen() { shipit_ctl pid "$PROGRAM" 2>/dev/null | grep -x '[1-9][0-9]*'; }

# Why the web program is not running, when supervisor says it stopped, keeps dying, or
# restarted it (another pid than the first one seen, SEEN_PID: the first process died).
pm_supervisor_dead() {
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

pm_supervisor_status() { shipit_ctl status "$PROGRAM" || true; }

# The web program's last lines, as the app server summarises them.
pm_supervisor_log() {
  log=$(shipit_ctl tail -16000 "$PROGRAM" 2>/dev/null) || log=
  printf '%s\n' "$log" | shipit_server log
}

# Waits until every process program of the release (all but the web app server) is RUNNING,
# which supervisor says once a process stayed up for its startsecs; fails as soon as one is
# FATAL, BACKOFF or EXITED, with the last lines it printed.
pm_supervisor_wait() {
  groups=$(shipit_programs "$PROGRAM_CONF" | grep -vxF "$PROGRAM") || return 0
  while :; do
    if died=$(pm_supervisor_died); then
      if shipit_migrate_pending; then return 0; fi
      printf '%s\n' "$died"
      exit 1
    fi
    pending=
    for group in $groups; do
      if shipit_ctl status "$group:*" 2>&1 | grep -qv ' RUNNING '; then pending="$pending $group"; fi
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

# The first of the release's processes (all but the web app server) that supervisor reports
# FATAL, BACKOFF or EXITED, with the last lines it printed; fails when none is.
pm_supervisor_died() {
  groups=$(shipit_programs "$PROGRAM_CONF" | grep -vxF "$PROGRAM") || return 1
  for group in $groups; do
    dead=$(shipit_ctl status "$group:*" 2>&1 | grep -E ' (FATAL|BACKOFF|EXITED) ' | head -n 1)
    if [ -n "$dead" ]; then
      shipit_ctl tail -4000 "${dead%% *}" 2>/dev/null | tail -n 12
      echo "process $group did not start: $dead"
      return 0
    fi
  done
  return 1
}

# Stops the new release's programs (a failed prepare or switch).
pm_supervisor_stop_new() {
  [ -f "$PROGRAM_CONF" ] || return 0
  names=$(shipit_programs "$PROGRAM_CONF" | tr '\n' ' ')
  rm -f "$PROGRAM_CONF"
  [ -n "$names" ] || return 0
  # Word splitting of the program list is wanted.
  # shellcheck disable=SC2086
  shipit_ctl update $names >/dev/null 2>&1 || true
  echo "stopped the new release's programs: $names"
}

# After the switch: every other release's programs of this project and target drain (see
# shipit_drain), but those of the release `current` points at (LIVE); then the live release's
# singletons start.
pm_supervisor_stop_old() {
  [ -d "$CONFD" ] || return 0
  OLD=
  LEGACY_GLOB=$(printf '%s' "$PROGRAM_GLOB" | sed 's/\./-/; s/\./-/')
  # The globs are globs on purpose.
  # shellcheck disable=SC2086
  for conf in "$CONFD"/$PROGRAM_GLOB "$CONFD"/$ONCE_GLOB "$CONFD"/$LEGACY_GLOB; do
    if [ ! -e "$conf" ] || [ "$conf" = "$PROGRAM_CONF" ]; then continue; fi
    shipit_supervisor_ours "$conf" || continue
    if [ -n "$LIVE" ] && [ "$release" = "$LIVE" ]; then continue; fi
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
    if [ -f "$R/.shipit/schedule.tab" ]; then shipit_supervisor_schedule_state; fi
    cp "$R/.shipit/supervisor-once.conf" "$ONCE_CONF.tmp"
    mv -f "$ONCE_CONF.tmp" "$ONCE_CONF"
    # shellcheck disable=SC2046
    shipit_ctl update $(shipit_programs "$ONCE_CONF") ||
      echo "warning: supervisor could not start the singletons of $ID"
  fi
}

# Where shipit's scheduler (py/scheduler.py, a singleton) keeps when each entry last fired,
# shared by every release: writable by the app user's group.
shipit_supervisor_schedule_state() {
  mkdir -p "$D/shared/.schedule"
  if [ -n "$APP_USER" ] && [ "$APP_USER" != "$(id -un)" ]; then
    chgrp "$(id -gn "$APP_USER")" "$D/shared/.schedule" 2>/dev/null && chmod 2770 "$D/shared/.schedule" ||
      echo "warning: cannot give $APP_USER's group write access to $D/shared/.schedule"
  fi
}

# shipit_drain PROGRAM...: the programs pm_supervisor_stop_old took the configs of get SIGTERM
# now and drain in the background, each within its stop timeout: the run does not wait for
# them. $D/.shipit/draining/ID records them (`pid=`, `start=` of the background job, `program=`
# lines) until pm_supervisor_reap of a later run has seen them gone. When this release's
# singletons take over from old ones, the stop is waited for here: never two of them at once.
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

# Whether the background stop recorded in $1 (see shipit_drain) is still under way: not done,
# and its job still runs.
shipit_draining() {
  [ ! -f "$1.done" ] || return 1
  start=$(shipit_value start "$1")
  [ -n "$start" ] && [ "$(shipit_starttime "$(shipit_value pid "$1")")" = "$start" ]
}

# pm_supervisor_reap [wait]: a finished drain's record is removed; what a drain did not finish
# (it was killed) is stopped here; one still under way is left to finish, or with `wait`
# waited for.
pm_supervisor_reap() {
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

# The releases of programs still draining, one a line: programs are named
# PROJECT.TARGET.RELEASE[.PROCESS] (or, before, PROJECT-TARGET-RELEASE).
pm_supervisor_draining() {
  for record in "$D"/.shipit/draining/*[0-9]; do
    [ -f "$record" ] && shipit_draining "$record" && sed -n 's/^program=//p' "$record"
  done | sed 's/^[^.]*\.[^.]*\.\([0-9]*\).*$/\1/; s/.*-//'
}

# The releases of this deploy_to whose program files are installed, one a line.
pm_supervisor_installed() {
  # The globs are globs on purpose.
  # shellcheck disable=SC2086
  for conf in "$CONFD"/$PROGRAM_GLOB "$CONFD"/$ONCE_GLOB; do
    [ -e "$conf" ] || continue
    if shipit_supervisor_ours "$conf"; then printf '%s\n' "$release"; fi
  done
}

# shipit_supervisor_ours FILE: sets `release` to the release program FILE runs (it is named
# PROJECT.TARGET.RELEASE[.once].conf, or before PROJECT-TARGET-RELEASE.conf), and succeeds when
# that release is this deploy_to's: every program shipit renders names its release directory,
# however deploy_to was named when it was rendered (a symlink, storage moved: the same one).
shipit_supervisor_ours() {
  release=${1##*/}
  release=${release%.conf}
  release=${release%.once}
  release=${release##*[.-]}
  grep -Fqx "directory=$D/releases/$release" "$1" && return 0
  mine=$(cd "$D/releases/$release" 2>/dev/null && pwd -P) || return 1
  theirs=$(sed -n 's/^directory=//p' "$1" | head -n 1)
  [ -n "$theirs" ] && [ "$(cd "$theirs" 2>/dev/null && pwd -P)" = "$mine" ]
}

# `shipit check`'s process manager item: supervisord answers and its conf_dir is writable.
pm_supervisor_check() {
  if [ ! -d "$CONFD" ] || [ ! -w "$CONFD" ]; then
    shipit_check app fail "supervisor conf_dir $CONFD is missing or not writable by $(id -un)"
  elif out=$(shipit_ctl pid 2>&1) && printf '%s\n' "$out" | grep -qx '[1-9][0-9]*'; then
    shipit_check app ok "supervisord (pid $out) answers \`$CTL\`; programs go to $CONFD"
  else
    shipit_check app fail "\`$CTL pid\` failed: $(printf '%s\n' "$out" | tail -n 1)"
  fi
}

# pm_supervisor_logs PROCESS LINES FOLLOW ERE: the stdout_logfile and stderr_logfile of
# PROCESS's program in the live release's program files, tailed (with FOLLOW, until the script
# ends: tail --pid ends with it).
pm_supervisor_logs() {
  files=$(shipit_supervisor_log_files "$1") || { printf '%s\n' "$files"; exit 1; }
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

# shipit_supervisor_log_files PROCESS: the log files of PROCESS of the live release, one a line.
shipit_supervisor_log_files() {
  # PROJECT.TARGET.RELEASE of the live release (PROGRAM_GLOB is PROJECT.TARGET.[0-9]...).
  live="$(printf '%s' "$PROGRAM_GLOB" | sed 's/\.\[0-9\].*//').$(shipit_live_id)"
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
