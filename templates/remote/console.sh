# shellcheck shell=sh
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
