# shellcheck shell=sh
# The front proxy, nginx: the release's site rendered with its static and media locations,
# installed atomically and checked, reloaded at the switch; maintenance mode.

shipit_restore_site() {
  if [ -f "$SITE_CHANGED" ]; then
    if [ -f "$SITE_BACKUP" ]; then mv -f "$SITE_BACKUP" "$SITE"; else rm -f "$SITE"; fi
    rm -f "$SITE_CHANGED"
  fi
}

# The release's nginx site with the static and media locations its settings give: the
# template's @@STATIC_URL@@, @@STATIC_ROOT@@, @@MEDIA_URL@@ and @@MEDIA_ROOT@@ are replaced; a
# line naming one that does not apply (no STATIC_ROOT, a URL on another host) is dropped. Paths
# inside the release are written through `current` (and static files through the shared store),
# so the site names no release and a code-only deploy does not change it.
shipit_render_site() {
  static_url=$(shipit_django_value STATIC_URL "$R")
  static_root=$(shipit_django_value STATIC_ROOT "$R")
  media_url=$(shipit_django_value MEDIA_URL "$R")
  media_root=$(shipit_django_value MEDIA_ROOT "$R")
  case "$static_url" in /*) ;; *) static_url= ;; esac
  case "$media_url" in /*) ;; *) media_url= ;; esac
  [ -n "$static_root" ] || static_url=
  [ -n "$media_root" ] || media_url=
  if [ -n "$(shipit_below "$static_root" "$R")" ]; then static_root="$D/shared/.static"; fi
  rel=$(shipit_below "$media_root" "$R")
  if [ -n "$rel" ]; then media_root="$D/current/$rel"; fi
  drop=
  [ -n "$static_url" ] || drop="$drop -e /@@STATIC_/d"
  [ -n "$media_url" ] || drop="$drop -e /@@MEDIA_/d"
  # Word splitting of the drop list is wanted.
  # shellcheck disable=SC2086
  sed $drop \
    -e "s|@@STATIC_URL@@|$(shipit_sed_escape "$static_url")|g" \
    -e "s|@@STATIC_ROOT@@|$(shipit_sed_escape "$static_root")|g" \
    -e "s|@@MEDIA_URL@@|$(shipit_sed_escape "$media_url")|g" \
    -e "s|@@MEDIA_ROOT@@|$(shipit_sed_escape "$media_root")|g" \
    "$R/.shipit/nginx.conf"
}

shipit_sed_escape() { printf '%s' "$1" | sed 's/[|&\\]/\\&/g'; }

# Installs the release's site at $SITE (atomically, keeping the previous one) when it
# differs, and checks nginx's configuration; a rejected site is replaced by the previous one.
step_nginx_check() {
  shipit_require_lock
  if [ ! -f "$R/.shipit/nginx.conf" ]; then
    echo "release $ID keeps no nginx site; nginx is left as it is"
    return 0
  fi
  if [ -f "$R/.shipit/django" ]; then
    shipit_render_site > "$R/.shipit/nginx.site"
  else
    cp "$R/.shipit/nginx.conf" "$R/.shipit/nginx.site"
  fi
  if [ -f "$SITE" ] && cmp -s "$SITE" "$R/.shipit/nginx.site"; then
    echo "nginx site unchanged"
    return 0
  fi
  SITE_TMP="$(dirname "$SITE")/.$(basename "$SITE").shipit-tmp"
  if [ -f "$SITE" ]; then cp -p "$SITE" "$SITE_BACKUP"; else rm -f "$SITE_BACKUP"; fi
  cp "$R/.shipit/nginx.site" "$SITE_TMP"
  : > "$SITE_CHANGED"
  mv -f "$SITE_TMP" "$SITE"
  if ! eval "$NGINX_TEST"; then
    echo "nginx rejected the new site $SITE; the previous one is restored"
    shipit_restore_site
    exit 1
  fi
  echo "nginx site installed at $SITE and checked"
}

step_reload_nginx() {
  if [ -f "$SITE_CHANGED" ] || [ -f "$SHIPIT_TLS_CHANGED" ]; then
    eval "$NGINX_RELOAD"
    shipit_tls_keep
    echo "nginx reloaded"
  else
    echo "nginx site unchanged; no reload needed"
  fi
}

MAINTENANCE_PAGE=.shipit/maintenance.html

# step_maintenance_prepare BASE64: checks that the installed site knows maintenance mode and
# writes the page beside where it goes.
step_maintenance_prepare() {
  [ "$NGINX" = 1 ] || { echo "maintenance mode needs the nginx site shipit installs: this target has no [nginx]"; exit 1; }
  [ -f "$SITE" ] || { echo "no nginx site at $SITE yet: deploy first"; exit 1; }
  grep -qF "$D/$MAINTENANCE_PAGE" "$SITE" || {
    echo "the nginx site $SITE does not know maintenance mode: deploy once with shipit's nginx.conf.j2, or add its maintenance block to your own"
    exit 1
  }
  mkdir -p "$D/.shipit"
  (
    umask 022
    printf '%s' "$1" | base64 -d > "$D/$MAINTENANCE_PAGE.next"
  )
}

step_maintenance_on() {
  mv -f "$D/$MAINTENANCE_PAGE.next" "$D/$MAINTENANCE_PAGE"
  shipit_log on
  echo "maintenance mode on: nginx answers 503 with $D/$MAINTENANCE_PAGE, except on $HEALTH_PATH"
}

step_maintenance_off() {
  if [ -f "$D/$MAINTENANCE_PAGE" ]; then
    rm -f "$D/$MAINTENANCE_PAGE" "$D/$MAINTENANCE_PAGE.next"
    shipit_log off
    echo "maintenance mode off"
  else
    echo "maintenance mode was not on"
  fi
}
