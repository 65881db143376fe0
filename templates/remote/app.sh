# shellcheck shell=sh
# The app: the release's rendered service configs, starting its app server and processes
# through the process manager (pm.sh), the health checks, and stopping other releases' after
# the switch. No step here knows which manager runs them.

# Stops this run's new app server and processes, unless `current` points at its release.
shipit_stop_new_app() {
  [ "$APP" = 1 ] || return 0
  if [ "$(shipit_live_id)" = "$ID" ]; then return 0; fi
  shipit_pm stop_new
}

# shipit_health_host RELEASE: the Host header the health check sends: health.host, else the
# first of the release's ALLOWED_HOSTS as its settings answer says (py/settings.py), else
# localhost.
shipit_health_host() {
  host=$HEALTH_HOST
  [ -n "$host" ] || host=$(shipit_django_value ALLOWED_HOST "$1")
  printf '%s' "${host:-localhost}"
}

# shipit_probe RELEASE: the health probe (py/probe.py) against RELEASE's socket, with the
# release's python: 0 healthy, 2 a 4xx (waiting will not help), 1 not (yet).
shipit_probe() {
  "$R/.venv/bin/python" -c "$PY_PROBE" "$HEALTH_PATH" "$(shipit_health_host "$1")" \
    "$HEALTH_STATUS" "$1/$APP_SOCK"
}

# The hint for a 4xx answer to the health check of RELEASE.
shipit_health_hint() {
  echo "hint: a 4xx is not healthy; a 400 usually means the Host header ($(shipit_health_host "$1")) is not in ALLOWED_HOSTS: set [targets.T.health] host to one of them, or path to a page that answers 200"
}

# step_configs BUNDLE: keeps the release's rendered service configs in $R/.shipit: each file of
# the bundle (base64; `-` for none), where a `#@shipit-file PATH` line starts each, at PATH
# there, as the backends named them (the front proxy's site, the process manager's programs or
# units, the schedule). No path may leave .shipit.
step_configs() {
  mkdir -p "$R/.shipit"
  if [ "$1" = - ]; then
    echo "no service config to keep"
    return 0
  fi
  printf %s "$1" | base64 -d > "$R/.shipit/configs.tmp"
  sed -n 's/^#@shipit-file //p' "$R/.shipit/configs.tmp" | while IFS= read -r name; do
    case "/$name/" in
      */../* | //*) echo "refused to write a config outside $R/.shipit: $name"; exit 1 ;;
    esac
    mkdir -p "$(dirname "$R/.shipit/$name")"
  done || exit 1
  awk -v dir="$R/.shipit" '
    index($0, "#@shipit-file ") == 1 {
      if (file != "") close(file)
      file = dir "/" substr($0, 15)
      printf "" > file
      next
    }
    { print >> file }
  ' "$R/.shipit/configs.tmp"
  rm -f "$R/.shipit/configs.tmp"
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
    STATUS=$(shipit_probe "$R" 2>&1) && { echo "health check before the switch: $STATUS"; return 0; }
    if [ $? -eq 2 ]; then
      echo "the new app server answered its health check on $R/$APP_SOCK with $STATUS"
      shipit_health_hint "$R"
      exit 1
    fi
    if shipit_migrate_pending; then return 0; fi
    polls=$((polls + 1))
    if [ $((polls % 5)) -eq 0 ]; then
      if DEAD=$(shipit_pm dead); then
        shipit_pm log
        echo "the new app server died before answering: $DEAD"
        exit 1
      fi
      # A process that dies while the web app server starts is named now, not at the deadline.
      if DIED=$(shipit_pm died); then
        printf '%s\n' "$DIED"
        exit 1
      fi
      if [ -z "$SEEN_PID" ]; then SEEN_PID=$(shipit_pm seen) || SEEN_PID=; fi
    fi
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
      shipit_pm status
      shipit_pm log
      echo "the new app server failed its health check on $R/$APP_SOCK within ${HEALTH_TIMEOUT}s: $STATUS"
      exit 1
    fi
    sleep 0.1
  done
}

# Checks the live release through `current`; a failure makes the switch script switch back.
step_health_check() {
  TRIES=$HEALTH_RETRIES
  while :; do
    STATUS=$(shipit_probe "$D/current" 2>&1) && { echo "health check after the switch: $STATUS"; return 0; }
    CODE=$?
    TRIES=$((TRIES - 1))
    if [ "$TRIES" -le 0 ] || [ "$CODE" -eq 2 ]; then
      echo "release $ID failed its health check after the switch: $STATUS"
      if [ "$CODE" -eq 2 ]; then shipit_health_hint "$D/current"; fi
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
  # The managers' stop_old (pm/*.sh) read LIVE.
  # shellcheck disable=SC2034
  LIVE=$(shipit_live_id)
  shipit_pms stop_old
}
