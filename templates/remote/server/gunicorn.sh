# shellcheck shell=sh
# The app server seam: a server NAME is a family server_NAME_VERB; steps and process managers
# call `shipit_server VERB` and never name the server (SERVER, from the preamble):
#
#   prepare   write what the release's start command reads before it starts
#   log       the last lines of the server's log on stdin, and why it died when it says so

shipit_server() {
  SHIPIT_SERVER_VERB=$1
  shift
  "server_${SERVER}_$SHIPIT_SERVER_VERB" "$@"
}

# Options the installed gunicorn needs, in the release's .shipit/gunicorn.args (the process
# managers' templates read it): from 25 on, every gunicorn of a user shares one control socket
# unless told not to, and the old and new releases' servers run side by side.
server_gunicorn_prepare() {
  version=$(find "$R/.venv/" -maxdepth 4 -type d -name 'gunicorn-*.dist-info' 2>/dev/null |
    sed -n 's/.*gunicorn-\([0-9]*\)\..*/\1/p' | head -n 1)
  if [ "${version:-0}" -ge 25 ]; then
    printf '%s\n' --no-control-socket
  fi > "$R/.shipit/gunicorn.args"
}

# The log without gunicorn's INFO lines, and the exception that stopped the app, which a long
# traceback can push out of view.
server_gunicorn_log() {
  log=$(cat)
  printf '%s\n' "$log" | grep -v '\] \[INFO\] ' | tail -n 12
  cause=$(printf '%s\n' "$log" | grep -E '^[A-Za-z_.]*(Error|Exception)(: |$)' |
    grep -v HaltServer | tail -n 1)
  if [ -n "$cause" ]; then echo "the app server died with: $cause"; fi
}
