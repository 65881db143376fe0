#!/usr/bin/env bash
# `cargo install` of the packaged crate works: `cargo package` carries what the build needs
# (the templates and the remote shell the binary embeds, the build script, Cargo.lock) and
# not the test suite, and the crate unpacked alone, outside any git checkout, builds with
# `cargo install --locked` and runs, naming the commit it was packaged from.
#
# Usage: bash tests/dist/crate.sh                 (a release build, as a user's)
#        PROFILE=debug bash tests/dist/crate.sh   (CI: a debug build)
# The binary is built in target/dist-crate (an install into target/ would replace the
# target/debug/shipit the tests run); its dependencies are those already compiled in target/
# (cargo's build-dir, Cargo 1.91 or newer; an older cargo builds them again), so after
# `cargo test` the debug build compiles shipit alone: about a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
log() { printf '== [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'crate.sh: %s\n' "$*" >&2; exit 1; }

version=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json, sys
print(*[p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "shipit"])')
log "cargo package"
cargo package --allow-dirty --no-verify --quiet
crate=target/package/shipit-$version.crate
files=$(tar tzf "$crate" | sed "s#^shipit-$version/##")
for needed in build.rs Cargo.lock src/main.rs templates/nginx.conf.j2 templates/remote/layout.sh \
  templates/remote/py/probe.py; do
  grep -qx "$needed" <<<"$files" || die "$crate lacks $needed"
done
! grep -E '^(tests|benches|fuzz|docs)/' <<<"$files" || die "$crate carries the test suite"
log "$crate: $(wc -l <<<"$files") files, $(du -k "$crate" | cut -f1) KiB"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar xzf "$crate" -C "$scratch"
flags=()
[ "${PROFILE:-release}" = debug ] && flags=(--debug)
log "cargo install --locked ${flags[*]} --path <the unpacked crate>"
CARGO_TARGET_DIR=$PWD/target/dist-crate CARGO_BUILD_BUILD_DIR=$PWD/target \
  cargo install --quiet --locked "${flags[@]}" \
  --path "$scratch/shipit-$version" --root "$scratch/root"
said=$("$scratch/root/bin/shipit" --version)
log "installed: $said"
sha=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["git"]["sha1"])' \
  "$scratch/shipit-$version/.cargo_vcs_info.json")
[[ $said == "shipit $version (${sha:0:12}"* ]] || die "--version does not name $sha: $said"
log finished
