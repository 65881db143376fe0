# shellcheck shell=sh
# The layout of deploy_to and of a release, and the helpers every step may use: reading
# NAME=VALUE files, the deploy log, a release's environment, manage.py in a release.

# The names every part of a script uses. Other files of the library read most of them (the
# whole library is checked as one by remote::preamble's shellcheck test).
# shellcheck disable=SC2034
shipit_init() {
  R="$D/releases/$ID"
  LOCK="$D/.shipit/lock"
  SITE_BACKUP="$D/.shipit/nginx-site.previous"
  SITE_CHANGED="$D/.shipit/nginx-site.changed"
  SHIPIT_TLS_CHANGED="$D/.shipit/tls.changed"
  PREVIOUS=$(readlink "$D/current" 2>/dev/null || true)
  # shipit writes `current` relative; another tool may have written it absolute.
  case $PREVIOUS in "$D"/releases/*) PREVIOUS=${PREVIOUS#"$D"/} ;; esac
  shipit_pm_init
  SHIPIT_RELEASE=$ID
  export DJANGO_SETTINGS_MODULE SHIPIT_RELEASE
}

# The id of the release `current` points at, or nothing (however the link is written:
# relative as shipit writes it, or absolute, or with a trailing slash).
shipit_live_id() { readlink "$D/current" 2>/dev/null | sed 's#/*$##; s#.*/##'; }

shipit_archive() { printf '%s/.shipit/archives/%s.tar.gz' "$D" "$SHA"; }

# shipit_log OUTCOME [WHAT]: one tab-separated line per operation in $D/.shipit/log: time, who,
# what ($OP unless WHAT), release, revision, outcome, and which shipit did it
# (`0.1.0 (f442366a1b2c 2026-05-07)`; older lines lack it). The certificate's renewal script
# writes lines of this shape too (`tls-renew`).
shipit_log() {
  (
    umask 077
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$DEPLOYER" "${2:-$OP}" \
      "$ID" "$REVISION" "$1" "$SHIPIT_VERSION" >> "$D/.shipit/log"
  )
}

# Exports the app's environment of the release in directory $1 (its ENV_FILE), as every
# manage.py step, hook and app server of that release sees it.
shipit_load_env() {
  if [ -f "$1/$ENV_FILE" ]; then
    set -a
    # The file is written by step_env from the target's env and secrets.
    # shellcheck disable=SC1090,SC1091
    . "$1/$ENV_FILE"
    set +a
  fi
}

shipit_state() {
  if [ -d "$R/.shipit" ]; then printf '%s\n' "$1" > "$R/.shipit/state"; fi
  true
}

# The start time of process $1 (its identity, with the pid), or nothing when it is gone. A
# zombie is gone: an orphan's waits for whoever reaps it (PID 1 in some containers reaps seldom).
shipit_starttime() {
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '$1 != "Z" && $1 != "X" { print $20 }'
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

# Runs manage.py in the release (or in `current`, for a rollback's unapply) with its venv.
shipit_manage() {
  dir=$1
  shift
  (shipit_load_env "$dir" && cd "$dir" && "$dir/.venv/bin/python" "$MANAGE" "$@")
}

# shipit_release_python DIR CODE ARGS...: runs the Python CODE (one of templates/remote/py,
# from the preamble) in release DIR with its venv and environment, as `python -c CODE ARGS...`.
shipit_release_python() {
  dir=$1
  code=$2
  shift 2
  (shipit_load_env "$dir" && cd "$dir" && "$dir/.venv/bin/python" -c "$code" "$@")
}

# The tools the remote steps need beyond the shell, checked before anything changes so a minimal
# host (BusyBox/Alpine without coreutils, say) is refused with their names, never half-deployed.
# `command -v` is a builtin: the check costs no process.
shipit_require_tools() {
  missing=
  for tool in tar gzip sha256sum base64 readlink find ls sed sort cut tr du mv ln head wc awk; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
  done
  if [ -n "$missing" ]; then
    echo "this host lacks$missing, which shipit's remote steps need (on Alpine: apk add coreutils)"
    exit 1
  fi
}

# The commands the target's settings name, found before anything changes: the python, the
# process manager's control command (pm_NAME_require) and nginx's.
shipit_require_commands() {
  case $PY in
    [0-9]*) ;;
    *) shipit_require_command "[project] python" "$PY" ;;
  esac
  if [ "$APP" = 1 ]; then shipit_pm require; fi
  if [ "$NGINX" = 1 ]; then
    shipit_require_command "[targets.$TARGET.nginx] test" "$NGINX_TEST"
    shipit_require_command "[targets.$TARGET.nginx] reload" "$NGINX_RELOAD"
  fi
}

# shipit_require_command KEY COMMAND: refuses COMMAND, which the setting KEY names, when its
# program is not on the deploy user's PATH. A non-login SSH session's PATH often lacks
# /usr/sbin, where nginx lives: without this, that shows only after migrate, as `eval: nginx:
# not found`. Behind sudo only sudo is looked for (sudo has a PATH of its own).
shipit_require_command() {
  set -f
  # The command is split into words on purpose.
  # shellcheck disable=SC2086
  set -- "$1" $2
  set +f
  key=$1
  shift
  while [ "$#" -gt 0 ]; do
    case $1 in env | -* | *=*) shift ;; *) break ;; esac
  done
  [ "$#" -gt 0 ] || return 0
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "$1, which $key runs, is not on $(id -un)'s PATH on this host (PATH=$PATH)"
  echo "hint: name it by its full path in $key (\`command -v $1\` in a login shell says where; nginx is usually /usr/sbin/nginx)"
  exit 127
}

# shipit's own state (lock, log, kept archives) is the deploy user's alone: 0700 directories,
# 0600 archives (see step_verify). A deploy or rollback first finds every command the target's
# settings name.
step_layout() {
  shipit_require_tools
  case $OP in deploy | rollback) shipit_require_commands ;; esac
  mkdir -p "$D/releases" "$D/shared" "$D/venvs" "$D/.shipit/archives" ||
    { echo "cannot create the layout under $D as $(id -un)"; exit 1; }
  [ -w "$D" ] || { echo "$D is not writable by $(id -un)"; exit 1; }
  chmod 0700 "$D/.shipit" "$D/.shipit/archives"
}

# `shipit audit`: every line of the deploy log, one fact `log:NUMBER` each (in file order).
step_audit() {
  [ -f "$D/.shipit/log" ] || return 0
  awk -v mark="@@shipit:$SHIPIT_NONCE" '{ printf "%s fact log:%09d %s\n", mark, NR, $0 }' \
    "$D/.shipit/log"
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

# mkdir -p for each directory that is not there yet (the test costs no process).
shipit_mkdir() {
  for dir in "$@"; do
    [ -d "$dir" ] || mkdir -p "$dir"
  done
}

# The part of path $1 below directory $2 (as written or with symlinks resolved), or nothing.
shipit_below() {
  real=$(cd "$2" 2>/dev/null && pwd -P) || real=$2
  case "$1" in
    "$2"/*) printf '%s' "${1#"$2"/}" ;;
    "$real"/*) printf '%s' "${1#"$real"/}" ;;
  esac
}

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
