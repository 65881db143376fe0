# shellcheck shell=sh
# The app: the release's rendered service configs, starting its app server and processes
# through the process manager (pm.sh), the health checks, and stopping other releases' after
# the switch. No step here knows which manager runs them.

# Stops this run's new app server and processes, unless `current` points at its release.
shipit_stop_new_app() {
  [ "$APP" = 1 ] || return 0
  if [ "$(readlink "$D/current" 2>/dev/null)" = "releases/$ID" ]; then return 0; fi
  shipit_pm stop_new
}

# The health probe (py/probe.py) against the release's socket $1, with the release's python.
shipit_probe() {
  "$R/.venv/bin/python" -c "$PY_PROBE" "$HEALTH_PATH" "$HEALTH_HOST" "$HEALTH_STATUS" "$1"
}

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
    printf '%s' "$PY_SCHEDULER" > "$R/.shipit/scheduler.py"
    mkdir -p "$D/shared/.schedule"
    if [ -n "$APP_USER" ] && [ "$APP_USER" != "$(id -un)" ]; then
      chgrp "$(id -gn "$APP_USER")" "$D/shared/.schedule" 2>/dev/null && chmod 2770 "$D/shared/.schedule" ||
        echo "warning: cannot give $APP_USER's group write access to $D/shared/.schedule"
    fi
  fi
  echo "rendered service configs kept in $R/.shipit"
}

# Starts the release's app server and processes through the process manager and waits until
# the web app server (on a web host) answers and every process runs; fails as soon as the
# process manager reports one dead.
step_start_app() {
  shipit_require_lock
  shipit_server prepare
  shipit_pm start
  DEADLINE=$(($(date +%s) + HEALTH_TIMEOUT))
  if [ "$WEB" = 1 ]; then shipit_wait_web; fi
  shipit_pm wait
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
      if DEAD=$(shipit_pm dead); then
        shipit_pm log
        echo "the new app server died before answering: $DEAD"
        exit 1
      fi
      if [ -z "$SEEN_PID" ]; then SEEN_PID=$(shipit_pm seen) || SEEN_PID=; fi
    fi
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
      shipit_pm status
      shipit_pm log
      echo "the new app server failed its health check on $R/.shipit/app.sock within ${HEALTH_TIMEOUT}s: $STATUS"
      exit 1
    fi
    sleep 0.1
  done
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

# After the switch, every process manager shipit knows (a target moved from one to another
# stops the old one's programs at its first switch under the new one) stops every other
# release's app server and processes of this project and target gracefully, each within its
# stop timeout, and the live release's singletons (`once` processes, on the primary) start:
# never two of them at once. Never fails: the release that matters is already live.
step_stop_old_app() {
  LIVE=$(readlink "$D/current" 2>/dev/null | sed 's#.*/##')
  shipit_pms stop_old
}
