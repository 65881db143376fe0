# shellcheck shell=sh
# The release archive: uploaded on the script's stdin, verified, unpacked; the release's
# environment file and shared paths.

# step_upload SIZE: the archive, unless the host has it already. The script asks shipit for it
# (mark `send`) and reads exactly SIZE bytes of its stdin into the part file that step_verify
# checks: in the begin script, under the lock, so the upload costs no exec of its own. `send
# exact` says this host's `head -c` reads no byte past the archive (GNU's; BusyBox's and
# uutils' read ahead through a buffer), so shipit may send what the script asks for next right
# behind it.
step_upload() {
  A=$(shipit_archive)
  if [ -f "$A" ]; then
    echo "skipped: the host has this archive already"
    return 0
  fi
  if head --version 2>/dev/null | grep -q '(GNU coreutils)'; then
    shipit_mark send exact
  else
    shipit_mark send
  fi
  head -c "$1" <&3 > "$A.part" || exit 1
  got=$(wc -c < "$A.part")
  if [ "$got" -ne "$1" ]; then
    rm -f "$A.part"
    echo "upload interrupted: $got of $1 bytes arrived"
    exit 1
  fi
}

step_verify() {
  A=$(shipit_archive)
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
# (.shipit/release), since the archive itself names no release.
step_unpack() {
  if [ -e "$R" ]; then echo "release $ID already exists on this host"; exit 1; fi
  # Code and static files are readable by nginx, whatever the host's umask.
  umask 022
  mkdir -p "$R"
  # -o: do not restore the archive's owner (GNU tar's --no-same-owner; BusyBox knows only -o).
  tar -xzof "$(shipit_archive)" -C "$R"
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
