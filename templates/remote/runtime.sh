# shellcheck shell=sh
# The script runtime: step markers carrying the run's nonce, each step in a subshell with
# `set -e`, the cleanup of the current part of the script on failure or a cut connection, and
# the hand-over points where shipit answers (continue, gate).

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
  # The cleanups (switch.sh) read the failed step.
  # shellcheck disable=SC2034
  SHIPIT_FAILED_STEP=
  trap shipit_interrupted PIPE HUP TERM
}

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
