# shellcheck shell=sh
# Django's settings (asked once, reused when nothing they read changed), hooks, and
# collectstatic with the shared static store.

# shipit_django_value NAME RELEASE: NAME's value in the release's settings answer
# (.shipit/django), or nothing.
shipit_django_value() { shipit_value "$1" "$2/.shipit/django"; }

# Asks the release's settings (with its venv and environment) where static and media files
# live and under which URLs, so collectstatic and nginx use exactly that. Setting Django up
# takes about a second: the live release's answer is reused when nothing it came from changed
# (py/settings.py, `cached`).
step_settings() {
  shipit_load_env "$R"
  cd "$R" || exit 1
  rm -f "$R/.shipit/django.inputs"
  if [ -n "$PREVIOUS" ] && [ -f "$D/$PREVIOUS/.shipit/django.inputs" ] &&
    "$R/.venv/bin/python" -c "$PY_SETTINGS" cached "$MANAGE" \
      "$R/.shipit/django" "$D/$PREVIOUS" "$R/.shipit/django.inputs" 2>/dev/null; then
    echo "settings: skipped, nothing they read changed since ${PREVIOUS##*/} (its answer reused)"
    shipit_fact settings "skipped, nothing they read changed since ${PREVIOUS##*/}"
  else
    "$R/.venv/bin/python" -c "$PY_SETTINGS" probe "$MANAGE" "$R/.shipit/django" "$R/.shipit/django.inputs"
    shipit_fact settings ran
  fi
  while IFS= read -r line; do printf '  %s\n' "$line"; done < "$R/.shipit/django"
  shipit_media_inside
}

# Reports a MEDIA_ROOT inside the release that no shared dir holds: uploads written there stay
# behind in this release and are gone from the site at the next deploy.
shipit_media_inside() {
  media=$(shipit_django_value MEDIA_ROOT "$R")
  [ -n "$media" ] || return 0
  # Where the path really leads: the nearest part of it that exists, links followed (shared
  # dirs are links into $D/shared).
  probe=$media
  while [ ! -e "$probe" ] && [ "$probe" != / ] && [ "$probe" != . ]; do probe=$(dirname "$probe"); done
  real=$(cd "$probe" 2>/dev/null && pwd -P) || return 0
  release=$(cd "$R" && pwd -P) || return 0
  shared=$(cd "$D/shared" 2>/dev/null && pwd -P) || shared=$D/shared
  case "$real/" in
    "$shared"/*) return 0 ;;
    "$release"/*) ;;
    *) return 0 ;;
  esac
  echo "warning: MEDIA_ROOT ($media) is inside the release: uploads there are lost at the next deploy"
  shipit_fact media_inside "$(shipit_below "$media" "$R")"
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

# Hash of what collectstatic reads for release $1: the static settings, the venv (its key names
# python and the requirements), every file under a `static/` directory of the release and in
# its STATICFILES_DIRS (by paths relative to the release). Prints nothing when that cannot be
# known (see py/settings.py: other finders, a directory outside the release).
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
