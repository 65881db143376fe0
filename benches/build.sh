#!/usr/bin/env bash
# Benchmark `shipit build` against `tar czf` of the same git-tracked file list.
#
# Generates a real Django project (tests/example plus a vendored copy of the Django package,
# a few thousand files), times both tools on it (warm page cache, min and median of RUNS runs),
# measures peak RSS with /usr/bin/time -v, then again as the tree grows: first in bytes only (the
# same project plus one BIG_MB MiB random file), then in files and bytes (LARGE_COPIES copies of
# the vendored package plus that file). Prints a summary table at the end.
#
# Usage: benches/build.sh            (from anywhere; needs network access to PyPI and apt)
# Knobs (environment): RUNS=5 LARGE_COPIES=10 BIG_MB=200 DJANGO_SPEC='django==5.2.*'
#                      SHIPIT=/path/to/shipit (skip `cargo build --release`)
#                      PYTHON=python3 KEEP=1 (keep the temp dir)
#                      NO_HYPERFINE=1 (time with a bash loop even if hyperfine is installed)
set -euo pipefail

RUNS=${RUNS:-5}
LARGE_COPIES=${LARGE_COPIES:-10}
BIG_MB=${BIG_MB:-200}
DJANGO_SPEC=${DJANGO_SPEC:-django==5.2.*}
PYTHON=${PYTHON:-python3}
TARGET=local
# Fixed commit date: shipit takes its build time from the commit, so every archive of the same
# tree is byte-identical.
export GIT_AUTHOR_DATE=2024-01-01T00:00:00Z GIT_COMMITTER_DATE=2024-01-01T00:00:00Z
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_CONFIG_NOSYSTEM=1 LC_ALL=C

LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '\n== [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# --- tools --------------------------------------------------------------------------------------
need_apt=()
[ -x /usr/bin/time ] || need_apt+=(time)
command -v hyperfine >/dev/null || need_apt+=(hyperfine)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing ${need_apt[*]}"
        apt-get update -qq >/dev/null || true
        apt-get install -y -qq "${need_apt[@]}" >/dev/null || true
    fi
fi
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) is required: apt-get install time"
HAVE_HYPERFINE=0
command -v hyperfine >/dev/null && [ "${NO_HYPERFINE:-0}" != 1 ] && HAVE_HYPERFINE=1
for tool in git tar gzip "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

if [ -z "${SHIPIT:-}" ]; then
    log "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
    SHIPIT=$REPO/target/release/shipit
fi
[ -x "$SHIPIT" ] || die "no shipit binary at $SHIPIT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shipit-bench.XXXXXX")
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
OUT=$WORK/out
mkdir -p "$OUT"

# --- project generation -------------------------------------------------------------------------
log "downloading $DJANGO_SPEC (wheel, no deps)"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$WORK/wheel" "$DJANGO_SPEC" \
    || die "pip download $DJANGO_SPEC failed"
WHEEL=$(ls "$WORK"/wheel/*.whl | head -n1)

commit_tree() { # DIR: git init + add + commit with the fixed date
    git -C "$1" init -q
    # Loose objects uncompressed: only makes `git add` of the big trees faster.
    git -C "$1" -c core.loosecompression=0 add -A
    git -C "$1" commit -q -m "benchmark tree"
    refresh_index "$1"
}

refresh_index() { # DIR: let git rewrite its index now, so files written in the same instant as
    # the index are not "racily clean"; otherwise the `git status` that shipit runs re-hashes
    # them on its first build, and its RSS (a child of shipit) counts the whole big file.
    git -C "$1" status --porcelain >/dev/null
}

tree_stats() { # DIR -> "FILES BYTES" of the tracked files
    (cd "$1" && git ls-files -z | xargs -0 stat -c %s -- | awk '{n++; s+=$1} END {print n, s}')
}

warm() { # DIR: read every tracked file once so the page cache is warm
    (cd "$1" && git ls-files -z | xargs -0 cat -- >/dev/null)
}

SMALL=$WORK/small
log "generating the small project: tests/example + vendored $(basename "$WHEEL")"
cp -r "$REPO/tests/example" "$SMALL"
rm -rf "$SMALL/.shipit"
mkdir -p "$SMALL/vendor"
"$PYTHON" -m zipfile -e "$WHEEL" "$SMALL/vendor"
commit_tree "$SMALL"
read -r SMALL_FILES SMALL_BYTES < <(tree_stats "$SMALL")
echo "small tree: $SMALL_FILES tracked files, $SMALL_BYTES bytes" >&2

# --- commands under test -------------------------------------------------------------------------
shipit_cmd() { # DIR OUTFILE
    printf '%q -C %q --quiet build --target %s -o %q' "$SHIPIT" "$1" "$TARGET" "$2"
}
tar_cmd() { # DIR OUTFILE: exactly the tracked file list, as shipit archives it
    printf 'cd %q && git ls-files -z | tar --null -T - -czf %q' "$1" "$2"
}
# For peak RSS, tar reads the list from a file, so the figure is tar's (or gzip's) own and not
# that of `git ls-files`, whose RSS grows with the index and is reported on its own line.
tar_rss_cmd() { # DIR OUTFILE
    (cd "$1" && git ls-files -z >"$WORK/list")
    printf 'cd %q && tar --null -T %q -czf %q' "$1" "$WORK/list" "$2"
}

# Sanity: both archives hold the tracked files; shipit adds its rendered deploy.map file(s)
# and .shipit/manifest.json.
eval "$(shipit_cmd "$SMALL" "$OUT/shipit.tar.gz")" >/dev/null
eval "$(tar_cmd "$SMALL" "$OUT/tar.tar.gz")"
SHIPIT_ENTRIES=$(tar tzf "$OUT/shipit.tar.gz" | grep -vc '/$' || true)
TAR_ENTRIES=$(tar tzf "$OUT/tar.tar.gz" | grep -vc '/$' || true)
SHIPIT_SIZE=$(stat -c %s "$OUT/shipit.tar.gz")
TAR_SIZE=$(stat -c %s "$OUT/tar.tar.gz")
echo "archive entries: shipit $SHIPIT_ENTRIES ($SHIPIT_SIZE bytes), tar czf $TAR_ENTRIES ($TAR_SIZE bytes)" >&2
ONLY_SHIPIT=$(comm -23 <(tar tzf "$OUT/shipit.tar.gz" | sort) <(tar tzf "$OUT/tar.tar.gz" | sort) | tr '\n' ' ')
ONLY_TAR=$(comm -13 <(tar tzf "$OUT/shipit.tar.gz" | sort) <(tar tzf "$OUT/tar.tar.gz" | sort) | tr '\n' ' ')
echo "only in shipit's archive: ${ONLY_SHIPIT:-none}" >&2
echo "only in tar's archive:    ${ONLY_TAR:-none}" >&2

# --- wall time -----------------------------------------------------------------------------------
# time_pair NAME1 CMD1 NAME2 CMD2 -> sets T_<NAME>_MIN / T_<NAME>_MED (seconds)
time_pair() {
    local n1=$1 c1=$2 n2=$3 c2=$4
    if [ "$HAVE_HYPERFINE" = 1 ]; then
        hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/hf.json" \
            -n "$n1" "$c1" -n "$n2" "$c2" >&2
        eval "$("$PYTHON" - "$WORK/hf.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    c = r["command"]
    print(f"T_{c}_MIN={r['min']:.4f}; T_{c}_MED={r['median']:.4f}; T_{c}_CPU={r['user'] + r['system']:.4f}s")
EOF
)"
    else
        local name cmd i t0 t1 times
        for name in "$n1" "$n2"; do
            if [ "$name" = "$n1" ]; then cmd=$c1; else cmd=$c2; fi
            bash -c "$cmd" >/dev/null 2>&1 # warm-up
            times=()
            for ((i = 0; i < RUNS; i++)); do
                t0=$(date +%s.%N); bash -c "$cmd" >/dev/null 2>&1; t1=$(date +%s.%N)
                times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}')")
            done
            read -r mn md < <(printf '%s\n' "${times[@]}" | sort -g |
                awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.4f %.4f\n", a[1], m}')
            echo "$name: min ${mn}s median ${md}s over $RUNS runs" >&2
            eval "T_${name}_MIN=$mn; T_${name}_MED=$md; T_${name}_CPU=n/a"
        done
    fi
}

log "wall time, small tree ($RUNS runs each after one warm-up)"
warm "$SMALL"
time_pair shipit "$(shipit_cmd "$SMALL" "$OUT/shipit.tar.gz")" tarczf "$(tar_cmd "$SMALL" "$OUT/tar.tar.gz")"

# --- peak memory ---------------------------------------------------------------------------------
# peak_rss CMD -> "RSS_KIB ELAPSED" of the command (GNU time: max RSS of the process tree's
# largest process, i.e. shipit or its git child; tar or its gzip child).
peak_rss() {
    /usr/bin/time -v -o "$WORK/time.txt" bash -c "$1" >/dev/null 2>&1
    awk -F': ' '/Maximum resident set size/ {rss=$2}
                /Elapsed \(wall clock\)/ {n=split($2, p, ":"); e=0; for (i=1;i<=n;i++) e=e*60+p[i]}
                END {printf "%d %.2f\n", rss, e}' "$WORK/time.txt"
}

log "peak RSS, small tree"
read -r RSS_SHIPIT_SMALL _ < <(peak_rss "$(shipit_cmd "$SMALL" "$OUT/shipit.tar.gz")")
read -r RSS_TAR_SMALL _ < <(peak_rss "$(tar_rss_cmd "$SMALL" "$OUT/tar.tar.gz")")
echo "shipit ${RSS_SHIPIT_SMALL} KiB, tar czf ${RSS_TAR_SMALL} KiB" >&2

# Bytes grow, file count does not: the small project plus one big random file.
log "adding one ${BIG_MB} MiB random file to the small project (same file count, ~10x bytes)"
mkdir -p "$SMALL/media"
head -c "$((BIG_MB * 1024 * 1024))" /dev/urandom >"$SMALL/media/big.bin"
git -C "$SMALL" -c core.loosecompression=0 add media/big.bin
git -C "$SMALL" commit -q -m "big file"
refresh_index "$SMALL"
read -r BIG_FILES BIG_BYTES < <(tree_stats "$SMALL")
echo "small + big file: $BIG_FILES tracked files, $BIG_BYTES bytes" >&2
warm "$SMALL"
read -r RSS_SHIPIT_BIG T_SHIPIT_BIG < <(peak_rss "$(shipit_cmd "$SMALL" "$OUT/shipit.tar.gz")")
echo "shipit ${RSS_SHIPIT_BIG} KiB in ${T_SHIPIT_BIG}s" >&2

# Files and bytes grow: LARGE_COPIES copies of the vendored package, plus the big file.
LARGE=$WORK/large
log "generating the large tree: $LARGE_COPIES x the vendored package + the ${BIG_MB} MiB file"
cp -r "$SMALL" "$LARGE"
rm -rf "$LARGE/.git"
for ((i = 2; i <= LARGE_COPIES; i++)); do
    cp -r "$SMALL/vendor" "$LARGE/vendor$i"
done
commit_tree "$LARGE"
read -r LARGE_FILES LARGE_BYTES < <(tree_stats "$LARGE")
echo "large tree: $LARGE_FILES tracked files, $LARGE_BYTES bytes" >&2
rm -f "$OUT"/*.tar.gz

log "peak RSS and wall time (one run each, warm cache), large tree"
warm "$LARGE"
read -r RSS_SHIPIT_LARGE T_SHIPIT_LARGE < <(peak_rss "$(shipit_cmd "$LARGE" "$OUT/shipit.tar.gz")")
read -r RSS_TAR_LARGE T_TAR_LARGE < <(peak_rss "$(tar_rss_cmd "$LARGE" "$OUT/tar.tar.gz")")
read -r RSS_GIT_LARGE _ < <(peak_rss "git -C $(printf %q "$LARGE") ls-files -z")
echo "shipit ${RSS_SHIPIT_LARGE} KiB in ${T_SHIPIT_LARGE}s, tar czf ${RSS_TAR_LARGE} KiB in ${T_TAR_LARGE}s, git ls-files ${RSS_GIT_LARGE} KiB" >&2

# --- summary -------------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
echo
echo "shipit build vs tar czf  ($(uname -m), $(nproc) cores, $(basename "$WHEEL"), runs=$RUNS, load average at start: $LOAD_AT_START)"
printf '%-34s %s\n' \
    "small tree: files" "$SMALL_FILES" \
    "small tree: bytes" "$SMALL_BYTES ($(mib "$SMALL_BYTES"))" \
    "archive size shipit / tar czf" "$SHIPIT_SIZE / $TAR_SIZE bytes" \
    "shipit build   min / median" "${T_shipit_MIN}s / ${T_shipit_MED}s" \
    "tar czf        min / median" "${T_tarczf_MIN}s / ${T_tarczf_MED}s" \
    "ratio shipit/tar (median)" "$(ratio "$T_shipit_MED" "$T_tarczf_MED")" \
    "CPU user+sys, mean shipit / tar" "$T_shipit_CPU / $T_tarczf_CPU" \
    "peak RSS shipit, small tree" "$RSS_SHIPIT_SMALL KiB" \
    "peak RSS tar czf, small tree" "$RSS_TAR_SMALL KiB" \
    "small + big file: files / bytes" "$BIG_FILES / $BIG_BYTES ($(mib "$BIG_BYTES"))" \
    "peak RSS shipit, small + big file" "$RSS_SHIPIT_BIG KiB (${T_SHIPIT_BIG}s)" \
    "large tree: files / bytes" "$LARGE_FILES / $LARGE_BYTES ($(mib "$LARGE_BYTES"))" \
    "peak RSS shipit, large tree" "$RSS_SHIPIT_LARGE KiB" \
    "peak RSS tar czf, large tree" "$RSS_TAR_LARGE KiB" \
    "peak RSS git ls-files, large tree" "$RSS_GIT_LARGE KiB (a child of shipit)" \
    "large tree wall shipit / tar" "${T_SHIPIT_LARGE}s / ${T_TAR_LARGE}s (one run each)"
