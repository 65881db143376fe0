# shellcheck shell=sh
# The release archive: uploaded on the script's stdin, verified, unpacked; the release's
# environment file and shared paths.

# step_upload SIZE [MANIFEST_SHA...]: the archive, unless the host has it already. The script
# asks shipit for it (mark `send`) and reads exactly SIZE bytes of its stdin into the part file
# that step_verify checks: in the begin script, under the lock, so the upload costs no exec of
# its own. `send exact` says this host's `head -c` reads no byte past the archive (GNU's;
# BusyBox's and uutils' read ahead through a buffer), so shipit may send what the script asks
# for next right behind it.
#
# MANIFEST_SHA: the manifests of the earlier builds shipit still has. When the live release's
# is one of them and its files are still what it says, the script asks for a delta instead
# (`send [exact] delta SHA`, see shipit_unpack_delta): shipit answers `SIZE SHA256` on a line,
# then the delta's bytes (or `full`, then the archive). The live release decides it, from what
# the script sees here, so a delta costs no round trip either.
step_upload() {
  A=$(shipit_archive)
  if [ -f "$A" ]; then
    echo "skipped: the host has this archive already"
    return 0
  fi
  size=$1
  shift
  exact=""
  if head --version 2>/dev/null | grep -q '(GNU coreutils)'; then exact=" exact"; fi
  base=$(shipit_delta_base "$@")
  if [ -z "$base" ]; then shipit_mark send"$exact"; else
    # Before the mark: a single host's plan is made as the upload starts (see HostSession).
    shipit_fact upload delta
    shipit_mark send"$exact" delta "${base#* }"
    base=${base% *}
    read -r got sha <&3 || exit 1
    if [ "$got" != full ]; then
      shipit_receive "$A.delta.part" "$got"
      got=$(sha256sum "$A.delta.part" | cut -d' ' -f1)
      if [ "$got" != "$sha" ]; then
        rm -f "$A.delta.part"
        echo "the delta is corrupt: sha256 $got, expected $sha"
        exit 1
      fi
      echo "$base" > "$A.base"
      mv -f "$A.delta.part" "$A.delta"
      echo "received the files that differ from release $base"
      return 0
    fi
  fi
  shipit_receive "$A.part" "$size"
}

# shipit_receive FILE SIZE: exactly SIZE bytes of the script's stdin into FILE.
shipit_receive() {
  head -c "$2" <&3 > "$1" || exit 1
  got=$(wc -c < "$1")
  if [ "$got" -ne "$2" ]; then
    rm -f "$1"
    echo "upload interrupted: $got of $2 bytes arrived"
    exit 1
  fi
}

# shipit_delta_base MANIFEST_SHA...: `ID SHA256` of the live release when its manifest is one
# of MANIFEST_SHA and its files are what that manifest says; nothing when there is no live
# release, shipit has none of its manifest, or its files differ (said on stderr: the full
# archive is sent then).
shipit_delta_base() {
  live=$(shipit_live_id)
  m="$D/releases/$live/.shipit/manifest.json"
  [ -n "$live" ] && [ -f "$m" ] || return 0
  sum=$(sha256sum "$m" | cut -d' ' -f1)
  case " $* " in *" $sum "*) ;; *) return 0 ;; esac
  if why=$(shipit_verify_tree "$D/releases/$live" "$m"); then
    echo "$live $sum"
  else
    echo "sending the whole archive: $why" >&2
  fi
}

step_verify() {
  A=$(shipit_archive)
  if [ ! -f "$A" ] && [ ! -f "$A.part" ] && [ -f "$A.delta" ]; then
    echo "a delta from release $(cat "$A.base"): checked file by file as it is unpacked"
    return 0
  fi
  if [ -f "$A.part" ]; then mv -f "$A.part" "$A"; fi
  [ -f "$A" ] || { echo "the archive $A is missing"; exit 1; }
  GOT=$(sha256sum "$A" | cut -d' ' -f1)
  if [ "$GOT" != "$SHA" ]; then
    rm -f "$A"
    echo "the uploaded archive is corrupt: sha256 $GOT, expected $SHA"
    exit 1
  fi
  chmod 0600 "$A"
  touch "$A"
  echo "sha256 $SHA verified"
}

# Unpacks into releases/$ID and writes the release id where the app reads it
# (.shipit/release), since the archive itself names no release. A host that received a delta
# instead of the archive (see shipit_unpack_delta) builds the release from it.
step_unpack() {
  if [ -e "$R" ]; then echo "release $ID already exists on this host"; exit 1; fi
  # Code and static files are readable by nginx, whatever the host's umask.
  umask 022
  A=$(shipit_archive)
  if [ ! -f "$A" ] && [ -f "$A.delta" ]; then
    shipit_unpack_delta "$D/releases/$(cat "$A.base")" "$A.delta" "$R" || exit 1
  else
    mkdir -p "$R"
    # -o: do not restore the archive's owner (GNU tar's --no-same-owner; BusyBox knows only -o).
    tar -xzof "$A" -C "$R"
  fi
  rm -f "$A.delta" "$A.base"
  mkdir -p "$R/.shipit"
  printf '%s\n' "$ID" > "$R/.shipit/release"
  shipit_state preparing
  echo "unpacked into $R"
}

# step_env BASE64: the release's env file, readable by the deploy user and (through its group)
# the app user only. Its values never reach a command line: printf is a shell builtin.
step_env() {
  (
    umask 077
    printf '%s' "${1-}" | base64 -d > "$R/$ENV_FILE"
  )
  if [ -n "$APP_USER" ] && [ "$APP_USER" != "$(id -un)" ]; then
    if chgrp "$(id -gn "$APP_USER")" "$R/$ENV_FILE" 2>/dev/null; then
      chmod 0640 "$R/$ENV_FILE"
    else
      echo "warning: cannot give $APP_USER's group read access to $R/.shipit/env"
    fi
  fi
  echo "environment: $(grep -c '=' "$R/$ENV_FILE") variable(s)"
}

# step_shared DIR... -- FILE...: links shared directories and files into the release.
step_shared() {
  shipit_mkdir "$D/shared/log"
  kind=dir
  for path in "$@"; do
    if [ "$path" = "--" ]; then kind="file"; continue; fi
    shared="$D/shared/$path"
    shipit_mkdir "${shared%/*}"
    if [ "$kind" = dir ]; then
      shipit_mkdir "$shared"
    elif [ ! -e "$shared" ]; then
      (umask 077; : > "$shared")
      echo "created empty shared file $path"
    fi
    if [ -e "$R/$path" ] || [ -L "$R/$path" ]; then rm -rf "${R:?}/$path"; fi
    linked="$R/$path"
    shipit_mkdir "${linked%/*}"
    ln -s "$shared" "$linked"
  done
  echo "linked shared paths"
}

# shipit_manifest_files MANIFEST: the regular files a release's manifest lists, one a line,
# `MODE SHA256 PATH`. The manifest is the pretty JSON shipit writes, one field a line; a path
# with an escape in it fails (status 1), so a delta is never built from a guess.
shipit_manifest_files() {
  awk '
    function value(line) { sub(/^[^:]*: "/, "", line); sub(/",?$/, "", line); return line }
    /^ *"path": "/ { path = value($0); if (path ~ /\\/) bad = 1 }
    /^ *"sha256": "/ { sha = value($0) }
    /^ *"mode": "/ { mode = value($0) }
    /^ *},?$/ { if (path != "" && sha != "") print mode " " sha " " path; path = sha = mode = "" }
    END { exit bad }
  ' "$1"
}

# shipit_verify_tree DIR MANIFEST: every regular file MANIFEST lists is in DIR, a file (not a
# link to one) with the manifest's sha256 and mode; prints the first that is not.
shipit_verify_tree() {
  list=$(shipit_manifest_files "$2") || { echo "cannot read the manifest $2"; return 1; }
  bad=$(printf '%s\n' "$list" | while read -r mode _ path; do
    if [ -L "$1/$path" ] || [ ! -f "$1/$path" ]; then echo "$path: missing"; break; fi
    case $mode in 0755) [ -x "$1/$path" ] ;; *) [ ! -x "$1/$path" ] ;; esac ||
      { echo "$path: not mode $mode"; break; }
  done)
  if [ -z "$bad" ]; then
    bad=$(printf '%s\n' "$list" | sed 's/^[^ ]* \([^ ]*\) /\1  /' |
      (cd "$1" && sha256sum -c 2>&1) | grep -v ': OK$' | head -n 1)
  fi
  if [ -n "$bad" ]; then echo "$1 differs from its manifest: $bad"; return 1; fi
}

# shipit_unpack_delta LIVE DELTA R: the release R from the live release LIVE and DELTA, a tar.gz
# of the new manifest, every symlink and the files whose sha256 or mode LIVE's manifest does
# not have: every other file the new manifest lists is hard-linked from LIVE (the same inode,
# so the same mode). A file that is not what the manifest says (LIVE changed on the host since)
# fails the release, which is removed.
shipit_unpack_delta() {
  mkdir -p "$3"
  if ! tar -xzof "$2" -C "$3"; then rm -rf "$3"; echo "the delta $2 does not unpack"; return 1; fi
  made=""
  shipit_manifest_files "$3/.shipit/manifest.json" | while read -r _ _ path; do
    if [ -e "$3/$path" ] || [ -L "$3/$path" ]; then continue; fi
    case $path in */*) dir=${path%/*} ;; *) dir=. ;; esac
    if [ "$dir" != "$made" ]; then mkdir -p "$3/$dir" && made=$dir; fi
    ln "$1/$path" "$3/$path" 2>/dev/null || echo "cannot link $path from $1"
  done
  if ! shipit_verify_tree "$3" "$3/.shipit/manifest.json"; then
    rm -rf "$3"
    return 1
  fi
  echo "built from $1 and $(tar -tzf "$2" | wc -l) file(s) sent"
}
