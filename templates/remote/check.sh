# shellcheck shell=sh
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
  shipit_check_tls
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
  if ! shipit_lock_read; then
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

# The process manager, reached with the configured commands (pm_NAME_check).
shipit_check_app() {
  if [ "$APP" != 1 ]; then
    shipit_check app skip "no process manager configured: shipit starts no app server"
    return 0
  fi
  shipit_pm check
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

# The certificate nginx serves ($D/$SHIPIT_TLS_CERT): names, issuer, days left. Fails under
# TLS_MIN_DAYS left (a renewal due at a third of 90 days left has failed for two weeks) or when
# a name the target serves ($SHIPIT_TLS_NAMES) is missing.
TLS_MIN_DAYS=14
shipit_check_tls() {
  cert="$D/$SHIPIT_TLS_CERT"
  if [ "$SHIPIT_TLS" != 1 ]; then
    shipit_check tls skip "no [tls]: the site is plain http"
  elif [ "$WEB" != 1 ]; then
    shipit_check tls skip "this host serves no site"
  elif [ ! -e "$cert" ]; then
    shipit_check tls skip "no certificate yet: the first deploy installs it"
  elif ! command -v openssl >/dev/null 2>&1 || ! described=$(shipit_tls_describe "$cert"); then
    shipit_check tls fail "openssl cannot read $cert"
  else
    days=$(printf '%s\n' "$described" | sed -n 1p)
    names=$(printf '%s\n' "$described" | sed -n 3p)
    missing=
    for name in $SHIPIT_TLS_NAMES; do
      shipit_tls_covers "$names" "$name" || missing="$missing $name"
    done
    detail="names: $names; issuer: $(printf '%s\n' "$described" | sed -n 2p); $days days left"
    if [ -n "$missing" ]; then
      shipit_check tls fail "$detail; missing:$missing"
    elif [ "$days" -lt "$TLS_MIN_DAYS" ]; then
      shipit_check tls fail "$detail (under $TLS_MIN_DAYS)"
    else
      shipit_check tls ok "$detail"
    fi
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
  if out=$(shipit_release_python "$D/current" "$PY_ALLOWED_HOST" "$MANAGE" "$(shipit_health_host "$D/current")" 2>&1); then
    shipit_check allowed_hosts ok "$out"
  else
    shipit_check allowed_hosts fail "$(printf '%s\n' "$out" | tail -n 1)"
  fi
}
