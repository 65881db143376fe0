# shellcheck shell=sh
# The release's virtualenv: the interpreter, the requirements it hashes, uv or pip.

# Reuses the virtualenv whose python version and requirements hash match, or builds it.
# The interpreter named by PY: a path or command as it is, or for a version ("3.12") the one uv
# manages, which uv installs when the host does not have it (and uv itself is installed with
# pip when missing).
shipit_python() {
  case "$PY" in
    [0-9]*) ;;
    *) printf '%s' "$PY"; return 0 ;;
  esac
  PATH="$PATH:$HOME/.local/bin"
  if ! command -v uv >/dev/null 2>&1; then
    echo "uv is not installed on this host; installing it with pip for python $PY" >&2
    python3 -m pip install --quiet --user --break-system-packages uv >&2 ||
      python3 -m pip install --quiet --user uv >&2 ||
      { echo "cannot install uv: install it, or set project.python to an interpreter's path" >&2; return 1; }
  fi
  if ! found=$(uv python find --no-project "$PY" 2>/dev/null); then
    if [ -n "$PY_MIRROR" ]; then
      UV_PYTHON_INSTALL_MIRROR=$PY_MIRROR
      export UV_PYTHON_INSTALL_MIRROR
    fi
    echo "python $PY is not on this host: downloading it with uv" >&2
    if ! uv python install "$PY" >&2; then
      have=$(uv python list --only-installed 2>/dev/null | awk '{ printf "%s%s", sep, $2; sep = ", " }')
      echo "python $PY is not on this host and uv could not download it (the interpreters uv finds here: ${have:-none}); set project.python to one of those or to an interpreter's path, or set UV_PYTHON_INSTALL_MIRROR where shipit runs to a mirror this host can reach" >&2
      return 1
    fi
    found=$(uv python find --no-project "$PY") || return 1
  fi
  printf '%s' "$found"
}

# shipit_requirements FILE: prints requirements FILE (inside the release, or absolute) and,
# after a `-- PATH` line each, every file it includes with pip's -r/-c (--requirement,
# --constraint; paths relative to the including file), recursively: what the venv key hashes.
# A file that includes nothing prints as itself. An included file that is missing, or includes
# nested deeper than 16 files (a cycle), is an error.
shipit_requirements() (
  depth=${2:-0}
  case "$1" in /*) path=$1 ;; *) path="$R/$1" ;; esac
  if [ "$depth" -gt 16 ]; then
    echo "requirements files include each other deeper than 16 levels (a cycle?) at $1" >&2
    exit 1
  fi
  [ -f "$path" ] || { echo "requirements file $1, included by another, is missing" >&2; exit 1; }
  cat "$path"
  dir=$(dirname "$1")
  sed -n -E 's/^[[:space:]]*(-r|-c|--requirement|--constraint)[[:space:]=]*([^[:space:]#]+).*$/\2/p' "$path" |
    tr -d '\r' | while IFS= read -r inc; do
      case "$inc" in *://*) continue ;; /*) ;; *) inc="$dir/$inc" ;; esac
      printf '\n-- %s\n' "$inc"
      shipit_requirements "$inc" $((depth + 1)) || exit 1
    done
)

step_virtualenv() {
  REQ_FILE="$R/$REQ"
  [ -f "$REQ_FILE" ] || { echo "requirements file $REQ is missing from the release"; exit 1; }
  PY=$(shipit_python) || exit 1
  PATH="$PATH:$HOME/.local/bin"
  PYVER=$("$PY" -S -c 'import sys; print(sys.version)') ||
    { echo "cannot run python $PY on this host"; exit 1; }
  # The key covers every file the requirements file includes: editing one builds a new venv.
  # Read once (the x keeps the trailing newlines a substitution would drop).
  INCLUDED=$(shipit_requirements "$REQ" && echo x) || exit 1
  KEY=$(printf '%s\n%s' "$PYVER" "${INCLUDED%x}" | sha256sum | cut -c1-16)
  V="$D/venvs/$KEY"
  use=$INSTALLER
  if [ "$use" = auto ]; then
    if command -v uv >/dev/null 2>&1; then use=uv; else use=pip; fi
  fi
  if [ -f "$V/.shipit-complete" ]; then
    echo "reusing virtualenv $KEY: python and requirements unchanged"
    shipit_fact venv "reused $KEY"
  else
    rm -rf "$V"
    umask 022
    UV_PYTHON_DOWNLOADS=never
    UV_NATIVE_TLS=1
    export UV_PYTHON_DOWNLOADS UV_NATIVE_TLS
    echo "building virtualenv $KEY with $use"
    if [ "$use" = uv ]; then
      uv venv --quiet --python "$PY" "$V"
      uv pip sync --quiet --python "$V/bin/python" "$REQ_FILE"
    else
      "$PY" -m venv "$V"
      "$V/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$REQ_FILE"
    fi
    : > "$V/.shipit-complete"
    shipit_fact venv "built $KEY"
  fi
  ln -sfn "../../venvs/$KEY" "$R/.venv"
}
