# shellcheck shell=sh
# The systemd process manager (pm_systemd_*, see pm.sh).
#
# A release's processes are instances of template units, one per process (per replica with
# several): `<project>.<target>.web@<release>.service` ($UNIT_PREFIX.web@…),
# `<project>.<target>.worker@<release>.service`, `<project>.<target>.worker.2@<release>.service`.
# The names hold no dot, so no two targets' units meet on one host. Nor do two deploy_tos': a
# template unit is one file, linked from one deploy_to's .shipit/systemd and running releases of
# it, so a host runs one deploy_to per project and target under systemd, and a deploy or rollback
# to another (a second checkout of the project and target) is refused before anything changes
# (pm_systemd_require), naming the deploy_to the names are linked from.
#
# Releases made before were `<project>-<target>-web@<release>.service` ($LEGACY_UNIT_PREFIX-web@…):
# each keeps the names it was made with in its own lists, which is all that starts, stops and
# reaps it. Each release keeps its rendered templates and run scripts in .shipit/systemd/ and
# the template names it starts before the switch in .shipit/units (the singletons, started at
# the switch, in .shipit/units-once). The templates are installed as $D/.shipit/systemd/NAME and
# `systemctl link`ed; only the live release's instances are enabled, so after a reboot only they
# come up.
#
# The schedule (on the primary) is timers, not instances: entry N of the live release is
# `<project>.<target>.schedule-N.timer`, starting the oneshot `<project>.<target>.schedule-N.service`
# (which runs the release's .shipit/systemd/schedule-N.sh in `current`). A release lists both
# files of each entry in .shipit/timers; the switch installs the live release's and removes
# every other.

# Whether systemd runs this host (`auto` picks it then).
pm_systemd_here() { [ -d /run/systemd/system ]; }

# Under systemd, user units' runtime directory, which a session without PAM does not set, and no
# sudo for root.
pm_systemd_init() {
  [ "$MANAGER" = systemd ] || return 0
  if [ "$SCOPE" = user ] && [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="/run/user/$(id -u)"
    export XDG_RUNTIME_DIR
  fi
  # Root needs no sudo (and a host without sudo still works for it).
  if [ "$(id -u)" = 0 ]; then
    SYSTEMCTL=${SYSTEMCTL#sudo -n }
    JOURNALCTL=${JOURNALCTL#sudo -n }
  fi
}

shipit_systemctl() { eval "$SYSTEMCTL" '"$@"'; }

# The release's web app server unit: named as the release's own list names it (a release made
# before the dots, rolled back to, keeps `$LEGACY_UNIT_PREFIX-web@ID.service`). Read when used:
# a deploy writes the list after the script began.
shipit_systemd_web() {
  if grep -qsxF "$LEGACY_UNIT_PREFIX-web@.service" "$R/.shipit/units"; then
    printf '%s\n' "$LEGACY_UNIT_PREFIX-web@$ID.service"
  else
    printf '%s\n' "$UNIT_PREFIX.web@$ID.service"
  fi
}

# The control command is on the deploy user's PATH, and this project and target's unit names on
# this host are free or this deploy_to's: another deploy_to's (a second checkout of the project
# and target) is refused, naming it and what to change, before anything changes here. Its units
# are never stopped, nor its templates linked over, nor its timers removed.
pm_systemd_require() {
  shipit_require_command "[targets.$TARGET.systemd] ctl" "$SYSTEMCTL"
  theirs=$(shipit_systemd_elsewhere) || return 0
  first=$(printf '%s\n' "$theirs" | head -n 1)
  other=${first#* }
  other=${other%/.shipit/systemd/*}
  echo "the systemd units $UNIT_PREFIX.* on this host are another deploy_to's: ${first%% *} is linked from ${first#* }"
  echo "units are named <project>.<target>.<process>, each linked from one deploy_to and running its releases: this host runs $other's under these names, so $D cannot use them too"
  echo "hint: deploy this checkout to $other, or give it names of its own: another [project] name in its shipit.toml (with [project] settings_module and wsgi_app, which default from the name), or another target name than \`$TARGET\`"
  if [ ! -d "$other" ]; then
    echo "hint: $other no longer exists; \`systemctl disable $(printf '%s\n' "$theirs" | awk '{ print $1 }' | tr '\n' ' ')\` frees the names"
  fi
  exit 1
}

# The units named $UNIT_PREFIX.* that systemd has from another deploy_to's .shipit/systemd,
# `UNIT FILE` a line (FILE: what the unit is linked to); fails when there are none. This
# deploy_to's own, named however (through a symlink, or from before its storage moved), resolve
# to its directory. A unit file not linked from a .shipit/systemd directory is not shipit's.
shipit_systemd_elsewhere() {
  ours=$(cd "$D/.shipit/systemd" 2>/dev/null && pwd -P) || ours="$D/.shipit/systemd"
  shipit_systemctl list-unit-files --no-legend --plain -- "$UNIT_PREFIX.*" 2>/dev/null | {
    found=1
    while read -r unit _; do
      # A template's properties are its instances'.
      case $unit in *@.service) probe="${unit%@.service}@shipit.service" ;; *) probe=$unit ;; esac
      path=$(shipit_systemctl show -P FragmentPath -- "$probe" 2>/dev/null) || continue
      file=$(readlink "$path" 2>/dev/null) || continue
      case $file in */.shipit/systemd/*) ;; *) continue ;; esac
      dir=$(cd "${file%/*}" 2>/dev/null && pwd -P) || dir=${file%/*}
      [ "$dir" != "$ours" ] || continue
      printf '%s %s\n' "$unit" "$file"
      found=0
    done
    exit "$found"
  }
}

shipit_journalctl() { eval "$JOURNALCTL" '"$@"'; }

# shipit_instances LIST ID: the instances of release ID of the templates LIST names.
shipit_instances() {
  [ -f "$1" ] || return 0
  sed "s/@\.service\$/@$2.service/" "$1" | tr '\n' ' '
}

# shipit_release_instances EXCEPT LIST...: the instances of every release but EXCEPT (an id,
# or empty for none) of the templates each release's .shipit/LIST files name, on one line.
shipit_release_instances() {
  except=$1
  shift
  for dir in "$D"/releases/*; do
    id=${dir##*/}
    if [ ! -d "$dir/.shipit" ] || [ "$id" = "$except" ]; then continue; fi
    for list in "$@"; do printf '%s ' "$(shipit_instances "$dir/.shipit/$list" "$id")"; done
  done
}

# Installs the templates LIST names from the release (when they differ from what is
# installed) and links them into systemd's unit path; linking reloads systemd's configuration.
# Fails when systemctl does, also where a caller's `||` turns `set -e` off.
shipit_systemd_install() {
  mkdir -p "$D/.shipit/systemd"
  changed=
  while read -r name; do
    installed="$D/.shipit/systemd/$name"
    if ! cmp -s "$R/.shipit/systemd/$name" "$installed"; then
      cp "$R/.shipit/systemd/$name" "$installed.tmp"
      mv -f "$installed.tmp" "$installed"
      changed="$changed $installed"
    fi
  done < "$1"
  [ -n "$changed" ] || return 0
  # Word splitting of the file list is wanted.
  # shellcheck disable=SC2086
  shipit_systemctl link $changed >/dev/null || return 1
  echo "installed systemd templates:$(printf '%s' "$changed" | sed 's#[^ ]*/##g')"
}

# shipit_units_state UNIT...: one line per unit: `NAME ACTIVE_STATE RESTARTS`.
shipit_units_state() {
  shipit_systemctl show -p Id -p ActiveState -p NRestarts -- "$@" 2>/dev/null | awk -F= '
    $1 == "Id" { id = $2 }
    $1 == "ActiveState" { state = $2 }
    $1 == "NRestarts" { restarts = $2 }
    $0 == "" && id != "" { print id, state, restarts + 0; id = "" }
    END { if (id != "") print id, state, restarts + 0 }
  '
}

# Why UNIT is not running (it failed, or died and was restarted); fails when it runs.
shipit_systemd_dead() {
  # Word splitting of the state line is wanted.
  # shellcheck disable=SC2046
  set -- $(shipit_units_state "$1")
  case "${2:-}" in
    failed) printf '%s failed\n' "$1"; return 0 ;;
  esac
  if [ "${3:-0}" -gt 0 ]; then
    printf '%s %s (restarted %s times: it keeps dying)\n' "$1" "$2" "$3"
    return 0
  fi
  return 1
}

pm_systemd_dead() { shipit_systemd_dead "$(shipit_systemd_web)"; }

# systemd tells a dead process by its restarts: no pid is kept.
pm_systemd_seen() { :; }

pm_systemd_status() { shipit_systemctl status --no-pager --lines=0 -- "$(shipit_systemd_web)" 2>&1 | head -n 4 || true; }

# The last lines UNIT logged (the journal), as the app server summarises them.
shipit_systemd_log() {
  log=$(shipit_journalctl -u "$1" -n 400 --no-pager -o cat 2>/dev/null) || log=
  printf '%s\n' "$log" | shipit_server log
}

pm_systemd_log() { shipit_systemd_log "$(shipit_systemd_web)"; }

# Installs the release's template units and starts their instances (the web app server and
# processes), not waiting.
pm_systemd_start() {
  [ -f "$R/.shipit/units" ] || { echo "release $ID keeps no systemd units"; exit 1; }
  if wrong=$(shipit_systemd_wrong_user); then echo "$wrong"; exit 1; fi
  shipit_systemd_install "$R/.shipit/units"
  # Word splitting of the unit list is wanted.
  # shellcheck disable=SC2046
  shipit_systemctl start --no-block -- $(shipit_instances "$R/.shipit/units" "$ID")
}

# Waits until every process of the release (all but the web app server) has run for a second
# without dying.
pm_systemd_wait() {
  # shellcheck disable=SC2046
  shipit_systemd_wait $(shipit_instances "$R/.shipit/units" "$ID" | tr ' ' '\n' | grep -vxF "$(shipit_systemd_web)")
}

# The first of the release's processes (all but the web app server) that failed or restarted,
# with the last lines it logged; fails when none did.
pm_systemd_died() {
  units=$(shipit_instances "$R/.shipit/units" "$ID" | tr ' ' '\n' | grep -vxF "$(shipit_systemd_web)") ||
    return 1
  # shellcheck disable=SC2086
  dead=$(shipit_units_state $units | awk '$2 == "failed" || $3 > 0' | head -n 1)
  [ -n "$dead" ] || return 1
  shipit_systemd_log "${dead%% *}"
  echo "process ${dead%% *} did not start: $dead"
}

# shipit_systemd_wait UNIT...: waits until every UNIT is active and still active, never
# restarted, a second later.
shipit_systemd_wait() {
  [ "$#" -gt 0 ] || return 0
  since=
  while :; do
    states=$(shipit_units_state "$@")
    dead=$(printf '%s\n' "$states" | awk '$2 == "failed" || $3 > 0' | head -n 1)
    if [ -n "$dead" ] && shipit_migrate_pending; then return 0; fi
    if [ -n "$dead" ]; then
      shipit_systemd_log "${dead%% *}"
      echo "process ${dead%% *} did not start: $dead"
      exit 1
    fi
    if printf '%s\n' "$states" | awk '$2 != "active" { bad = 1 } END { exit !bad }'; then
      since=
    elif [ -z "$since" ]; then
      since=$(date +%s)
    elif [ "$(date +%s)" -gt "$since" ]; then
      echo "running: $*"
      return 0
    fi
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
      echo "not running within ${HEALTH_TIMEOUT}s: $(printf '%s\n' "$states" | awk '$2 != "active"' | tr '\n' ' ')"
      exit 1
    fi
    sleep 0.2
  done
}

# Stops the new release's instances (a failed prepare or switch); `current` is not theirs.
pm_systemd_stop_new() {
  units="$(shipit_instances "$R/.shipit/units" "$ID") $(shipit_instances "$R/.shipit/units-once" "$ID")"
  [ -n "$(printf '%s' "$units" | tr -d ' ')" ] || return 0
  # Word splitting of the unit list is wanted.
  # shellcheck disable=SC2086
  shipit_systemctl stop -- $units >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  shipit_systemctl reset-failed -- $units >/dev/null 2>&1 || true
  echo "stopped the new release's units: $units"
}

# After the switch: stops every other release's instances gracefully (each within its unit's
# TimeoutStopSec) and disables them, enables the live release's, then starts and enables its
# singletons. The app servers and processes drain in the background (`stop --no-block`:
# systemd itself carries the stop out, and the run does not wait); the old singletons are
# waited for before the new ones start, so that two never run at once. Never fails: the
# release that matters is already live.
pm_systemd_stop_old() {
  [ "$MANAGER" = systemd ] || [ -d "$D/.shipit/systemd" ] || return 0
  # LIVE is step_stop_old_app's: the release `current` points at.
  # shellcheck disable=SC2153
  old=$(shipit_release_instances "$LIVE" units)
  old_once=$(shipit_release_instances "$LIVE" units-once)
  # shellcheck disable=SC2086
  set -- $old $old_once
  if [ "$#" -gt 0 ]; then
    shipit_systemctl disable --no-reload -- "$@" >/dev/null 2>&1 ||
      echo "warning: systemd could not disable $*"
    # shellcheck disable=SC2086
    running=$(shipit_systemd_running $old)
    # shellcheck disable=SC2086
    running_once=$(shipit_systemd_running $old_once)
    if [ -n "$running_once" ]; then
      # shellcheck disable=SC2086
      shipit_systemctl stop -- $running_once || echo "warning: systemd could not stop $running_once"
      echo "stopped: $running_once"
    fi
    if [ -n "$running" ]; then
      # shellcheck disable=SC2086
      shipit_systemctl stop --no-block -- $running || echo "warning: systemd could not stop $running"
      echo "stopping in the background, each within its stop timeout: $running"
    fi
    if [ -z "$running$running_once" ]; then echo "no other release's units run"; fi
  elif [ "$MANAGER" = systemd ]; then
    echo "no other app server to stop"
  fi
  [ "$LIVE" = "$ID" ] || return 0
  shipit_systemd_timers
  enable=$(shipit_instances "$R/.shipit/units" "$ID")
  if [ -n "$enable" ]; then
    # shellcheck disable=SC2086
    shipit_systemctl enable --no-reload -- $enable >/dev/null 2>&1 ||
      echo "warning: systemd could not enable $enable"
  fi
  [ -f "$R/.shipit/units-once" ] || return 0
  # A template systemd refuses leaves its singletons unstarted: the start below warns.
  shipit_systemd_install "$R/.shipit/units-once" || true
  once=$(shipit_instances "$R/.shipit/units-once" "$ID")
  # shellcheck disable=SC2086
  if shipit_systemctl start -- $once && shipit_systemctl enable --no-reload -- $once >/dev/null 2>&1; then
    echo "started the singletons: $once"
  else
    echo "warning: systemd could not start the singletons of $ID"
  fi
}

# shipit_systemd_running UNIT...: those of UNIT that run, start or stop, on one line.
shipit_systemd_running() {
  [ "$#" -gt 0 ] || return 0
  shipit_units_state "$@" | awk '$2 != "inactive" && $2 != "failed" { print $1 }' | tr '\n' ' '
}

# pm_systemd_reap [wait]: systemd carries out its own stops (stop --no-block): with `wait`,
# waits until no instance of a release other than `current`'s is still stopping (what an
# earlier run left draining): before a rollback starts a release again, or a deploy prunes.
pm_systemd_reap() {
  [ "$MANAGER" = systemd ] && [ "${1:-}" = wait ] || return 0
  units=$(shipit_release_instances "$(shipit_live_id)" units)
  [ -n "$(printf '%s' "$units" | tr -d ' ')" ] || return 0
  said=
  # Word splitting of the unit list is wanted.
  # shellcheck disable=SC2086
  while stopping=$(shipit_units_state $units | awk '$2 == "deactivating" { print $1 }' | tr '\n' ' ') &&
    [ -n "$stopping" ]; do
    if [ -z "$said" ]; then echo "waiting for the units of an earlier run to stop: $stopping"; said=1; fi
    sleep 0.1
  done
}

# At the switch, on every host: stops and disables every installed schedule timer that the live
# release does not have (the whole schedule on a host that is not its primary, or under
# supervisor; and, at the first deploy that names them with dots, the timers named the legacy
# way: every file of $D/.shipit/systemd is this deploy_to's), with its service, and removes their
# files; then installs, enables and (re)starts
# the live release's (a timer restarted keeps no old time). Only timers are stopped: a run in
# progress finishes, and its timer, even a new one of the same name, does not start the service
# again while it runs.
shipit_systemd_timers() {
  timers=
  # Under supervisor (`auto` on a host without systemd) the scheduler runs the schedule.
  if [ -f "$R/.shipit/timers" ] && [ "$MANAGER" = systemd ]; then
    timers=$(grep '\.timer$' "$R/.shipit/timers" | tr '\n' ' ')
  fi
  gone=
  for file in "$D/.shipit/systemd/"*.timer; do
    [ -e "$file" ] || continue
    case " $timers " in *" ${file##*/} "*) continue ;; esac
    gone="$gone ${file##*/}"
  done
  if [ -n "$gone" ]; then
    # Word splitting of the unit lists is wanted.
    # shellcheck disable=SC2086
    services=$(printf '%s\n' $gone | sed 's/\.timer$/.service/' | tr '\n' ' ')
    # shellcheck disable=SC2086
    shipit_systemctl stop -- $gone >/dev/null 2>&1 || echo "warning: systemd could not stop$gone"
    # Disabling a linked unit removes its link too; the files go after.
    # shellcheck disable=SC2086
    shipit_systemctl disable -- $gone $services >/dev/null 2>&1 ||
      echo "warning: systemd could not disable$gone"
    for name in $gone $services; do rm -f "$D/.shipit/systemd/$name"; done
    echo "removed the timers of no live schedule:$gone"
  fi
  [ -n "$timers" ] || return 0
  shipit_systemd_install "$R/.shipit/timers" || true
  # shellcheck disable=SC2086
  if shipit_systemctl enable --no-reload -- $timers >/dev/null 2>&1 && shipit_systemctl restart -- $timers; then
    echo "the schedule's timers run: $timers"
  else
    echo "warning: systemd could not start the timers of $ID: $timers"
  fi
}

# Releases some instance of which runs (or starts, or stops), one a line; with `stopping`, only
# those some instance of which is still stopping.
shipit_systemd_installed_releases() {
  units=$(shipit_release_instances "" units units-once)
  [ -n "$(printf '%s' "$units" | tr -d ' ')" ] || return 0
  # Word splitting of the unit list is wanted.
  # shellcheck disable=SC2086
  shipit_units_state $units | awk -v only="${1:-}" '
    $2 == "inactive" || $2 == "failed" { next }
    only == "stopping" && $2 != "deactivating" { next }
    { sub(/\.service$/, "", $1); sub(/.*@/, "", $1); print $1 }'
}

# User units run as the deploy user: says why when app_user is someone else (which cannot be
# honoured), and fails when it is not.
shipit_systemd_wrong_user() {
  [ "$SCOPE" = user ] && [ -n "$APP_USER" ] && [ "$APP_USER" != "$(id -un)" ] || return 1
  echo "user units run as $(id -un), not app_user $APP_USER: use [targets.$TARGET.systemd] scope = \"system\", or drop app_user"
}

# `shipit check`'s process manager item under systemd.
pm_systemd_check() {
  if wrong=$(shipit_systemd_wrong_user); then
    shipit_check app fail "$wrong"
  elif [ "$SCOPE" = user ] && [ ! -e "/var/lib/systemd/linger/$(id -un)" ]; then
    shipit_check app fail "lingering is off for $(id -un): its user units stop when its last session ends and do not start at boot; run \`sudo loginctl enable-linger $(id -un)\`"
  elif ! out=$(shipit_systemctl show -p Version --value 2>&1); then
    shipit_check app fail "\`$SYSTEMCTL\` does not work as $(id -un): $(printf '%s\n' "$out" | tail -n 1)"
  elif theirs=$(shipit_systemd_elsewhere); then
    first=$(printf '%s\n' "$theirs" | head -n 1)
    shipit_check app fail "the systemd units $UNIT_PREFIX.* here are another deploy_to's (${first%% *} is linked from ${first#* }): one deploy_to per project and target runs under systemd on a host; deploy to that one, or give this checkout another [project] name or target name"
  elif ! shipit_journal_readable; then
    shipit_check app fail "systemd $out answers, but $(id -un) cannot read the system journal with \`$JOURNALCTL\`: add it to the systemd-journal group, or set [targets.$TARGET.systemd] journal = \"sudo -n journalctl\" (shipit logs would show nothing)"
  else
    shipit_check app ok "systemd $out answers \`$SYSTEMCTL\` ($SCOPE units); templates go to $D/.shipit/systemd"
  fi
}

# Whether `shipit logs` can read the units' journal: user units' is the user's own; the system
# journal takes root, sudo, or the systemd-journal (or adm) group.
shipit_journal_readable() {
  [ "$SCOPE" = user ] || [ "$(id -u)" = 0 ] && return 0
  case "$JOURNALCTL" in sudo*) shipit_journalctl -n 0 -q >/dev/null 2>&1; return ;; esac
  id -nG | tr ' ' '\n' | grep -qx -e systemd-journal -e adm -e wheel
}

# The processes the unit lists on stdin name (replicas once; units of either naming), on one
# line.
shipit_systemd_processes() {
  while read -r name; do
    name=${name%@.service}
    case $name in
      "$UNIT_PREFIX".*) name=${name#"$UNIT_PREFIX".} ;;
      "$LEGACY_UNIT_PREFIX"-*) name=${name#"$LEGACY_UNIT_PREFIX"-} ;;
    esac
    printf '%s\n' "${name%.[0-9]*}"
  done | sort -u | tr '\n' ' '
}

# Whether a release of this deploy_to still lists units named the legacy way.
shipit_systemd_legacy() {
  grep -qs "^$LEGACY_UNIT_PREFIX-" "$D"/releases/*/.shipit/units "$D"/releases/*/.shipit/units-once \
    "$D"/releases/*/.shipit/timers
}

# pm_systemd_logs PROCESS LINES FOLLOW ERE: from the journal of every release's instances of
# PROCESS (replicas too); `schedule`: of the schedule's timers' services. While a release of
# this deploy_to lists units named the legacy way, of those names too (and of the scheduler
# units of releases from before timers).
pm_systemd_logs() {
  known=$(cat "$D/current/.shipit/units" "$D/current/.shipit/units-once" 2>/dev/null | shipit_systemd_processes)
  if [ -s "$D/current/.shipit/timers" ]; then known="$known schedule"; fi
  case " $known " in
    *" $1 "*) ;;
    *) echo "no process \`$1\` in this target; its processes: $known"; exit 1 ;;
  esac
  process=$1 lines=$2 follow=$3 ere=$4
  if [ "$process" = schedule ]; then
    set -- -u "$UNIT_PREFIX.schedule-[0-9]*.service"
  else
    set -- -u "$UNIT_PREFIX.$process@*.service" -u "$UNIT_PREFIX.$process.*@*.service"
  fi
  if shipit_systemd_legacy; then
    set -- "$@" -u "$LEGACY_UNIT_PREFIX-$process@*.service"
    if [ "$process" = schedule ]; then
      set -- "$@" -u "$LEGACY_UNIT_PREFIX-schedule-[0-9]*.service"
    else
      set -- "$@" -u "$LEGACY_UNIT_PREFIX-$process.*@*.service"
    fi
  fi
  if [ "$follow" = 1 ]; then
    # journalctl -f never ends by itself: it is stopped when shipit goes (the script's stdin,
    # fd 3, closes).
    pidfile="$D/.shipit/logs-follow.$$"
    { shipit_journalctl "$@" -n "$lines" -f --no-pager -q -o short-iso 2>&1 &
      echo $! > "$pidfile"
      wait; } | shipit_grep "$ere" &
    while read -r _ <&3; do :; done
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  else
    shipit_journalctl "$@" -n "$lines" --no-pager -q -o short-iso | shipit_grep "$ere"
  fi
}

pm_systemd_installed() { shipit_systemd_installed_releases; }

pm_systemd_draining() {
  [ "$MANAGER" = systemd ] || return 0
  shipit_systemd_installed_releases stopping
}
