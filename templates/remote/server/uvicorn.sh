# shellcheck shell=sh
# uvicorn runs as gunicorn's worker class (uvicorn_worker.UvicornWorker): gunicorn's arbiter
# binds the socket, stops gracefully and writes the log, so what the release needs before it
# starts and how its log reads are gunicorn's.

server_uvicorn_prepare() {
  server_gunicorn_prepare "$@"
}

# gunicorn's reading of the log, and what to install when the worker class is missing.
server_uvicorn_log() {
  uvicorn_log=$(cat)
  printf '%s\n' "$uvicorn_log" | server_gunicorn_log
  case $uvicorn_log in
    *"No module named 'uvicorn_worker'"*)
      echo "server = \"uvicorn\" runs uvicorn_worker.UvicornWorker: pin uvicorn-worker (and websockets) in the target's requirements" ;;
  esac
}
