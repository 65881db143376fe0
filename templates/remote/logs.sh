# shellcheck shell=sh
# `shipit logs`: the live release's app logs, read-only, through the process manager.

# step_logs PROCESS LINES FOLLOW ERE: the last LINES lines of PROCESS of the live release (those
# matching ERE, when it is not empty) and, when FOLLOW is 1, every new line until shipit goes:
# its end of the connection (the script's stdin, fd 3) closes and the script ends. The process
# manager knows where the logs are (pm_NAME_logs).
step_logs() {
  [ -L "$D/current" ] || { echo "nothing is deployed under $D"; exit 1; }
  [ "$APP" = 1 ] || { echo "no process manager is configured: shipit runs no app server here"; exit 1; }
  shipit_pm logs "$@"
}

# shipit_grep ERE: the lines of stdin matching ERE (all of them when it is empty), line by line.
shipit_grep() {
  if [ -n "$1" ]; then grep --line-buffered -E -e "$1" || true; else cat; fi
}
