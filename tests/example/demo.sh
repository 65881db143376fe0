#!/usr/bin/env bash
# Deploys the example project to this machine with shipit's `local` target and shows it served:
# a private nginx (port 8080) and supervisord under /tmp/shipit-demo, gunicorn per release.
# Run it as root on Debian/Ubuntu (it installs nginx, supervisor and python3-venv if missing).
# Run it again to see a second release replace the first without a restart of nginx.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
demo=/tmp/shipit-demo

missing=()
for pair in nginx:nginx supervisord:supervisor curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "building shipit"
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
shipit="$repo/target/release/shipit"

mkdir -p "$demo/nginx/sites" "$demo/nginx/tmp" "$demo/supervisor/conf.d"
if ! grep -q '^user root;' "$demo/nginx/nginx.conf" 2>/dev/null; then
  # Workers run as root like the rest of the demo: the app socket is 0660, open to its owner
  # and group only (on a real server, nginx's user joins the app user's group).
  cat > "$demo/nginx/nginx.conf" <<CONF
# Private nginx for the shipit demo.
user root;
worker_processes 1;
pid $demo/nginx/nginx.pid;
error_log $demo/nginx/error.log notice;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log $demo/nginx/access.log;
    client_body_temp_path $demo/nginx/tmp/body;
    proxy_temp_path $demo/nginx/tmp/proxy;
    fastcgi_temp_path $demo/nginx/tmp/fastcgi;
    uwsgi_temp_path $demo/nginx/tmp/uwsgi;
    scgi_temp_path $demo/nginx/tmp/scgi;
    include $demo/nginx/sites/*.conf;
}
CONF
fi
if [ ! -f "$demo/supervisor/supervisord.conf" ]; then
  cat > "$demo/supervisor/supervisord.conf" <<CONF
; Private supervisord for the shipit demo.
[unix_http_server]
file = $demo/supervisor/supervisor.sock
[supervisord]
pidfile = $demo/supervisor/supervisord.pid
logfile = $demo/supervisor/supervisord.log
childlogdir = $demo/supervisor
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl = unix://$demo/supervisor/supervisor.sock
[include]
files = $demo/supervisor/conf.d/*.conf
CONF
fi

nginx_cmd=(nginx -e "$demo/nginx/error.log" -c "$demo/nginx/nginx.conf")
if ! { [ -f "$demo/nginx/nginx.pid" ] && kill -0 "$(cat "$demo/nginx/nginx.pid")" 2>/dev/null; }; then
  echo "starting nginx (private, $demo/nginx)"
  "${nginx_cmd[@]}"
else
  "${nginx_cmd[@]}" -s reload
fi
ctl=(supervisorctl -c "$demo/supervisor/supervisord.conf")
if ! "${ctl[@]}" pid >/dev/null 2>&1; then
  echo "starting supervisord (private, $demo/supervisor)"
  supervisord -c "$demo/supervisor/supervisord.conf"
  for _ in $(seq 50); do "${ctl[@]}" pid >/dev/null 2>&1 && break; sleep 0.1; done
fi

# The example lives inside shipit's own git repository; shipit archives what git tracks there.
"$shipit" -C "$here" deploy --target local

echo
echo "served at http://127.0.0.1:8080/ :"
curl -fsS http://127.0.0.1:8080/ | sed -n 's/<[^>]*>//g; /release:\|target:\|visits:/p' | sed 's/^ */  /'
echo
echo "releases: $(find "$demo/hello/releases" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')"
echo "stop the demo with: ${ctl[*]} shutdown; ${nginx_cmd[*]} -s quit"
