#!/usr/bin/env bash
# Builds the PyPI wheel the way a release does (pyproject.toml: maturin's `bin` bindings, zig as
# the linker, manylinux2014 = glibc 2.17) and proves it: prints its size and the glibc floor of
# its binary (the newest GLIBC_x.y symbol version it needs, from `objdump -T`), then runs the
# ignored test tests/it/wheel.rs on it (pip and `uv tool install` of the wheel, and the same
# binary building and deploying the example from a Debian 11 root filesystem).
#
# Usage: bash tests/dist/wheel.sh        (as root, after `bash .ci/setup`; needs PyPI access)
# Knobs (environment):
#   WHEEL=path/to.whl   test that wheel instead of building one
#   TOOLS=DIR           the venv maturin and zig are installed in [target/wheel-tools]
#   SOURCE_DATE_EPOCH   the build day `shipit --version` names [the commit's time]
#   NO_TEST=1           build and measure only
# The wheel goes to target/wheels/ (maturin's default).
set -euo pipefail
cd "$(dirname "$0")/../.."
log() { printf '== [%3ds] %s\n' "$SECONDS" "$*" >&2; }

if [ -z "${WHEEL:-}" ]; then
  TOOLS=${TOOLS:-target/wheel-tools}
  if [ ! -x "$TOOLS/bin/maturin" ]; then
    log "installing maturin and ziglang into $TOOLS"
    python3 -m venv "$TOOLS"
    # The versions this script was proven with; newer zig releases change its command line.
    "$TOOLS/bin/pip" install --quiet 'maturin==1.16.0' 'ziglang==0.17.1'
  fi
  rm -f target/wheels/shipit-*.whl
  log "maturin build --release --zig --compatibility manylinux2014"
  # maturin finds zig through the ziglang package of the python on PATH. The build day of a
  # release is its commit's: the same commit gives the same --version (only this build sees
  # it: cargo test would rebuild the tests' binary for another day).
  PATH="$PWD/$TOOLS/bin:$PATH" SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)} \
    maturin build --release --zig --compatibility manylinux2014 --out target/wheels
  WHEEL=$(ls target/wheels/shipit-*.whl)
fi
WHEEL=$(realpath "$WHEEL")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 - "$WHEEL" "$scratch/shipit" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    [name] = [n for n in z.namelist() if n.endswith(".data/scripts/shipit")]
    open(out, "wb").write(z.read(name))
PY
floor=$(objdump -T "$scratch/shipit" | grep -o 'GLIBC_[0-9.]*' | sort -u -V | tail -1)
log "$(basename "$WHEEL"): $(du -k "$WHEEL" | cut -f1) KiB wheel, $(du -k "$scratch/shipit" | cut -f1) KiB binary, needs ${floor/_/ }"
log "dynamic libraries: $(objdump -p "$scratch/shipit" | awk '/NEEDED/ { printf "%s ", $2 }')"

if [ -z "${NO_TEST:-}" ]; then
  log "tests/it/wheel.rs on it"
  SHIPIT_WHEEL=$WHEEL cargo test --test it -- --ignored --exact \
    wheel::the_wheel_installs_with_pip_and_uv_and_deploys_from_debian_11
fi
log finished
