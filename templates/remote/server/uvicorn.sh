# shellcheck shell=sh
# uvicorn runs as gunicorn's worker class (uvicorn_worker.UvicornWorker): gunicorn's arbiter
# binds the socket, stops gracefully and writes the log, so what the release needs before it
# starts and how its log reads are gunicorn's.

server_uvicorn_prepare() {
  server_gunicorn_prepare "$@"
}

server_uvicorn_log() {
  server_gunicorn_log "$@"
}
