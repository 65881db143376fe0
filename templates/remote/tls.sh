# shellcheck shell=sh
# HTTPS: the target's certificate and key in $D/$SHIPIT_TLS_DIR, outside every release (a rollback
# never touches them, no archive holds them). Files mode writes the team's chain and key there;
# ACME mode has certbot issue them on the host.
#
# Why certbot (Debian's package) for ACME: it runs on the host, so a certificate is renewed by
# `certbot renew` from a timer without the deploying machine; it speaks RFC 8555 to any
# directory (Let's Encrypt, ZeroSSL, an internal CA, pebble), serves http-01 through a webroot
# nginx already answers on port 80, keeps its lineage (account, archive, `live/` symlinks) in a
# directory of our choosing, and runs as the deploy user with --config-dir/--work-dir/--logs-dir.
# $D/$SHIPIT_TLS_CERT and $D/$SHIPIT_TLS_KEY are what nginx reads: files (files mode) or symlinks into
# certbot's `live/shipit/` (ACME), so a renewal needs only a graceful reload.

# $D/$SHIPIT_TLS_DIR (0755, so nginx's workers reach the webroot; the key files are 0600 and certbot's
# directory 0700) and the webroot.
shipit_tls_dirs() {
  shipit_mkdir "$D/$SHIPIT_TLS_DIR" "$D/$SHIPIT_TLS_WEBROOT"
  chmod 0755 "$D/$SHIPIT_TLS_DIR" "$D/$SHIPIT_TLS_WEBROOT"
  shipit_tls_stapling
}

# What the site includes ($D/$SHIPIT_TLS_STAPLING): OCSP stapling, verified against the chain,
# when the certificate names an OCSP responder; nothing when it names none (Let's Encrypt's
# stopped in 2025, pebble's and a placeholder have none), where `ssl_stapling on` only warns.
shipit_tls_stapling() {
  cert="$D/$SHIPIT_TLS_CERT"
  if [ -e "$cert" ] && [ -n "$(openssl x509 -noout -ocsp_uri -in "$cert" 2>/dev/null)" ]; then
    printf 'ssl_stapling on;\nssl_stapling_verify on;\nssl_trusted_certificate %s;\n' "$cert"
  else
    echo "# no OCSP URL"
  fi > "$D/$SHIPIT_TLS_STAPLING.next"
  mv -f "$D/$SHIPIT_TLS_STAPLING.next" "$D/$SHIPIT_TLS_STAPLING"
}

# shipit_tls_install CERT KEY: renames CERT.next and KEY.next (files or symlinks) over CERT and
# KEY, keeping the previous ones as .previous until the switch's reload (shipit_tls_keep) or a
# failure (shipit_tls_restore); marks SHIPIT_TLS_CHANGED so the switch reloads nginx.
shipit_tls_install() {
  for file in "$1" "$2"; do
    rm -f "$file.previous"
    if [ -e "$file" ] || [ -L "$file" ]; then cp -P -p "$file" "$file.previous"; fi
  done
  : > "$SHIPIT_TLS_CHANGED"
  mv -f "$2.next" "$2"
  mv -f "$1.next" "$1"
  shipit_tls_stapling
}

# After a failed prepare: the certificate and key this run replaced are put back.
shipit_tls_restore() {
  [ -f "$SHIPIT_TLS_CHANGED" ] || return 0
  for file in "$D/$SHIPIT_TLS_CERT" "$D/$SHIPIT_TLS_KEY"; do
    if [ -e "$file.previous" ] || [ -L "$file.previous" ]; then
      mv -f "$file.previous" "$file"
    else
      rm -f "$file"
    fi
  done
  rm -f "$SHIPIT_TLS_CHANGED"
  shipit_tls_stapling
  echo "the previous certificate and key are back in $D/$SHIPIT_TLS_DIR"
}

# Once nginx serves them: the previous certificate and key are no longer needed.
shipit_tls_keep() {
  rm -f "$SHIPIT_TLS_CHANGED" "$D/$SHIPIT_TLS_CERT.previous" "$D/$SHIPIT_TLS_KEY.previous"
}

# step_tls_files CHAIN KEY (base64 each): the team's certificate chain and key, written 0600
# beside where they go (their bytes never on a command line: printf is a builtin) and renamed
# into place when they differ; nginx checks them with the site, and the switch reloads it.
step_tls_files() {
  shipit_tls_dirs
  cert="$D/$SHIPIT_TLS_CERT"
  key="$D/$SHIPIT_TLS_KEY"
  (
    umask 077
    printf '%s' "$1" | base64 -d > "$cert.next"
    printf '%s' "$2" | base64 -d > "$key.next"
  )
  if [ ! -L "$cert" ] && [ ! -L "$key" ] && cmp -s "$cert.next" "$cert" &&
    cmp -s "$key.next" "$key"; then
    rm -f "$cert.next" "$key.next"
    echo "certificate unchanged"
    return 0
  fi
  shipit_tls_install "$cert" "$key"
  echo "certificate and key installed in $D/$SHIPIT_TLS_DIR (0600); nginx serves them from the switch"
}

# Before ACME's first issuance the site still needs a certificate for `nginx -t`: a self-signed
# placeholder valid one day, replaced by step_tls_issue before the switch.
step_tls_placeholder() {
  shipit_tls_dirs
  if [ -e "$D/$SHIPIT_TLS_CERT" ] && [ -e "$D/$SHIPIT_TLS_KEY" ]; then return 0; fi
  command -v openssl >/dev/null 2>&1 ||
    { echo "openssl is not on $(id -un)'s PATH on this host: it makes the placeholder certificate nginx checks the site with until the first one is issued (apt-get install openssl)"; exit 1; }
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=shipit-placeholder \
      -keyout "$D/$SHIPIT_TLS_KEY.next" -out "$D/$SHIPIT_TLS_CERT.next" > "$D/$SHIPIT_TLS_DIR/openssl.out" 2>&1
  ) || { cat "$D/$SHIPIT_TLS_DIR/openssl.out"; exit 1; }
  shipit_tls_install "$D/$SHIPIT_TLS_CERT" "$D/$SHIPIT_TLS_KEY"
  echo "no certificate yet: a placeholder lets nginx check the site until ACME issues one"
}

# shipit_tls_describe CERT: what `shipit check` and `shipit tls status` show of the PEM
# certificate CERT, three lines: whole days left (negative once expired), the issuer, its DNS
# names (space-separated). Fails when openssl cannot read it.
shipit_tls_describe() {
  end=$(openssl x509 -noout -enddate -in "$1" 2>/dev/null) || return 1
  echo "$((($(date -d "${end#notAfter=}" +%s) - $(date +%s)) / 86400))"
  openssl x509 -noout -issuer -in "$1" | sed 's/^issuer= *//'
  openssl x509 -noout -ext subjectAltName -in "$1" 2>/dev/null | sed 1d | tr ',' '\n' |
    sed -n 's/^ *DNS://p' | tr '\n' ' ' | sed 's/ $//'
  echo
}

# shipit_tls_covers NAMES NAME: whether NAMES (space-separated) cover NAME, itself or by a
# wildcard of its parent.
shipit_tls_covers() {
  for covered in $1; do
    [ "$covered" = "$2" ] && return 0
    [ "$covered" = "*.${2#*.}" ] && return 0
  done
  return 1
}

# shipit_sh_quote VALUE: VALUE as one single-quoted sh word.
shipit_sh_quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# shipit_tls_renewer CA: writes $D/$SHIPIT_TLS_DIR/renew, the host's own renewal, run by the
# timer the schedule installs on every web host (a systemd timer, or shipit's scheduler under
# supervisor), by `shipit tls renew`, or by hand. Nothing of shipit or the deploying machine is
# needed to run it. The certificate is due when a third of its lifetime is left (certbot 2.1's
# own test is a fixed 30 days: every run would renew a certificate that lives less than that),
# checked locally, so a run that is not due asks the CA nothing; `--force` renews now. When
# due, `certbot renew` renews this target's lineage as `certonly` left it (directory, webroot,
# names, account), trusting CA when set, and nginx reloads gracefully. Each run adds
# `TIME EVENT DETAIL` to renew.log (not-due, renewed, failed), the last of which `shipit tls
# status` shows; a renewal or a failure also goes to the deploy log, for `shipit audit`.
shipit_tls_renewer() {
  dir="$D/$SHIPIT_TLS_DIR"
  {
    echo '#!/bin/sh'
    echo "# shipit: renews $D's certificate when due (--force: now)"
    if [ -n "$1" ]; then echo "REQUESTS_CA_BUNDLE=$(shipit_sh_quote "$1"); export REQUESTS_CA_BUNDLE"; fi
    echo "dir=$(shipit_sh_quote "$dir")"
    echo "reload=$(shipit_sh_quote "$NGINX_RELOAD")"
    echo "audit=$(shipit_sh_quote "$D/.shipit/log")"
    echo "version=$(shipit_sh_quote "$SHIPIT_VERSION")"
    cat <<'RENEW'
cert="$dir/certbot/live/shipit/cert.pem"
note() {
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> "$dir/renew.log"
  echo "$*"
}
# A renewal or its failure goes to the deploy log too, for `shipit audit`.
audit() {
  (umask 077 && printf '%s\t%s\ttls-renew\t\t\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$(id -un)@$(uname -n)" "$*" "$version" >> "$audit")
  note "$@"
}
epoch() { date -d "$(openssl x509 -noout "-$1" -in "$cert" | cut -d= -f2)" +%s; }
if [ "${1:-}" != --force ]; then
  if ! start=$(epoch startdate) || ! end=$(epoch enddate); then
    audit "failed no readable certificate at $cert"
    exit 1
  fi
  left=$((end - $(date +%s)))
  if [ $((3 * left)) -gt $((end - start)) ]; then
    note "not-due ${left}s left of $((end - start))s"
    exit 0
  fi
fi
if ! certbot renew --non-interactive --no-random-sleep-on-renew --force-renewal --cert-name shipit \
  --config-dir "$dir/certbot" --work-dir "$dir/certbot/work" --logs-dir "$dir/certbot/logs" \
  > "$dir/renew.out" 2>&1; then
  cat "$dir/renew.out"
  audit "failed certbot renew (its words: $dir/renew.out)"
  exit 1
fi
eval "$reload" || { audit "failed nginx did not reload: $reload"; exit 1; }
audit "renewed serial=$(openssl x509 -noout -serial -in "$cert" | cut -d= -f2) $(openssl x509 -noout -enddate -in "$cert")"
RENEW
  } > "$dir/renew.next"
  chmod 0700 "$dir/renew.next"
  mv -f "$dir/renew.next" "$dir/renew"
}

# step_tls_issue DIRECTORY EMAIL CA DOMAIN...: the certificate for DOMAINs from the ACME
# DIRECTORY by certbot (account EMAIL, or none; CA: a bundle trusting the directory, or empty),
# answering http-01 from the webroot the site serves on port 80. Only when this host has no
# certificate for exactly these names yet: renewing is the renewal timer's job (renew). When the site
# that answers the challenge is not live yet, nginx is reloaded with it first; a failure puts
# the previous site back and reloads again, so the old release keeps serving as before.
step_tls_issue() {
  directory=$1
  email=$2
  ca=$3
  shift 3
  dir="$D/$SHIPIT_TLS_DIR"
  lineage="certbot/live/shipit"
  if [ -f "$dir/$lineage/fullchain.pem" ] && [ "$(cat "$dir/domains" 2>/dev/null)" = "$*" ] &&
    [ "$(readlink "$D/$SHIPIT_TLS_CERT")" = "$lineage/fullchain.pem" ]; then
    shipit_tls_renewer "$ca"
    echo "certificate for $* already issued; $dir/renew renews it"
    return 0
  fi
  command -v certbot >/dev/null 2>&1 ||
    { echo "certbot is not on $(id -un)'s PATH on this host: it issues and renews the ACME certificate (apt-get install certbot)"; exit 1; }
  early=
  if [ -f "$SITE_CHANGED" ]; then
    eval "$NGINX_RELOAD"
    early=1
    echo "nginx reloaded with the new site, so that port 80 answers the challenge"
  fi
  mkdir -p "$dir/certbot"
  chmod 0700 "$dir/certbot"
  domains=$*
  set -- --non-interactive --agree-tos --webroot -w "$D/$SHIPIT_TLS_WEBROOT" --cert-name shipit \
    --server "$directory" --config-dir "$dir/certbot" --work-dir "$dir/certbot/work" \
    --logs-dir "$dir/certbot/logs" --preferred-challenges http-01 --keep-until-expiring
  # The domains are DNS names (config::tls checks them): split on spaces on purpose.
  # shellcheck disable=SC2086
  for domain in $domains; do set -- "$@" -d "$domain"; done
  if [ -n "$email" ]; then set -- "$@" --email "$email"; else set -- "$@" --register-unsafely-without-email; fi
  start=$(date +%s)
  # The CA bundle reaches certbot alone (through env), never the steps after it.
  if [ -n "$ca" ]; then
    set -- env "REQUESTS_CA_BUNDLE=$ca" certbot certonly "$@"
  else
    set -- certbot certonly "$@"
  fi
  if ! "$@" > "$dir/certbot.out" 2>&1; then
    cat "$dir/certbot.out"
    echo "the ACME server at $directory issued no certificate for $domains (its words above)"
    echo "hint: every name must resolve to this host and port 80 must reach this nginx from the CA; a rate limit passes with time (test against a staging directory first)"
    if [ -n "$early" ]; then
      shipit_restore_site
      eval "$NGINX_RELOAD"
      echo "the previous nginx site is back and reloaded; the live release keeps serving"
    fi
    exit 1
  fi
  printf '%s\n' "$domains" > "$dir/domains"
  ln -sfn "$lineage/fullchain.pem" "$D/$SHIPIT_TLS_CERT.next"
  ln -sfn "$lineage/privkey.pem" "$D/$SHIPIT_TLS_KEY.next"
  shipit_tls_install "$D/$SHIPIT_TLS_CERT" "$D/$SHIPIT_TLS_KEY"
  if ! eval "$NGINX_TEST"; then
    echo "nginx rejects the issued certificate"
    exit 1
  fi
  if [ -n "$early" ]; then eval "$NGINX_RELOAD"; fi
  shipit_tls_renewer "$ca"
  printf '%s issued %s by %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$domains" "$directory" >> "$dir/renew.log"
  shipit_log "issued $domains by $directory" tls-issue
  echo "certificate for $domains issued by $directory in $(($(date +%s) - start))s and checked by nginx"
}

# step_tls_status: `shipit tls status`: this host's certificate as the `tls` check reports it,
# and the last line of its renewal log (tls_last).
step_tls_status() {
  shipit_check_tls
  shipit_fact tls_last "$(tail -n 1 "$D/$SHIPIT_TLS_DIR/renew.log" 2>/dev/null)"
}

# step_tls_renew [--force]: `shipit tls renew`: this host's renewal now, the script its timer
# runs (on a host that serves the site; an ACME deploy writes it).
step_tls_renew() {
  [ "$WEB" = 1 ] || return 0
  [ -x "$D/$SHIPIT_TLS_DIR/renew" ] ||
    { echo "no $D/$SHIPIT_TLS_DIR/renew: an ACME deploy writes it"; exit 1; }
  "$D/$SHIPIT_TLS_DIR/renew" "$@"
}
