# shellcheck shell=sh
# Releases on the host: the inventory shipit plans from (facts), what earlier runs left
# stopping, and removing releases (prune, `releases --prune`).

# Releases whose programs are installed in the process manager (running, or meant to).
shipit_installed_releases() {
  [ "$APP" = 1 ] || return 0
  shipit_pm installed
}

# Inventory: one fact per release, plus `current` and `in_use` (releases some process of this
# user has as its working directory: where the app servers run). `sizes` adds disk usage.
shipit_inventory() {
  DRAINING=$(shipit_draining_releases)
  DREAL=$(cd "$D" 2>/dev/null && pwd -P) || DREAL=$D
  shipit_fact current "$(shipit_live_id)"
  if [ -L "$D/current" ] && [ ! -d "$D/current/" ]; then
    shipit_fact dangling "$(readlink "$D/current")"
  fi
  # `ls -l` rather than GNU find's -printf, so BusyBox hosts answer too.
  shipit_fact in_use "$({
    find /proc -mindepth 2 -maxdepth 2 -name cwd -user "$(id -u)" \
        -exec ls -l {} + 2>/dev/null | sed -n 's/.* -> //p' |
      while read -r c; do
        case "$c" in "$DREAL"/releases/*) r=${c#"$DREAL"/releases/}; echo "${r%%/*}" ;; esac
      done
    shipit_installed_releases
    printf '%s\n' "$DRAINING"
  } | sort -u | tr '\n' ' ')"
  # Of those, the ones only stopping: a deploy may still prune them (step_prune waits).
  shipit_fact draining "$(printf '%s\n' "$DRAINING" | sort -u | tr '\n' ' ')"
  # Every release's venv at once, the rest read by the shell itself: a few processes per
  # release would add up to most of the step.
  NL='
'
  venvs=$(shipit_release_venvs)
  for dir in "$D"/releases/*; do
    [ -d "$dir" ] || continue
    id=${dir##*/}
    state=
    if [ -f "$dir/.shipit/state" ]; then read -r state < "$dir/.shipit/state" || true; fi
    size=0
    if [ "${1:-}" = sizes ]; then size=$(du -sk "$dir" 2>/dev/null | cut -f1); fi
    venv=
    case "$NL$venvs" in
      *"$NL$id "*)
        venv=${venvs#*"$id "}
        venv=${venv%%"$NL"*}
        ;;
    esac
    shipit_manifest_revision "$dir"
    shipit_fact "release:$id" "${state:-unknown} ${size:-0} ${venv:--} ${REV:--}"
  done
}

# Each release's venv, an "ID KEY" line each, from one `ls` (a readlink per release would be a
# process each).
shipit_release_venvs() {
  # Release ids are digits, and BusyBox's find cannot print a link's target.
  # shellcheck disable=SC2012
  ls -ld "$D"/releases/*/.venv 2>/dev/null |
    sed -n 's#^.*/releases/\([^/]*\)/\.venv -> \(.*/\)*\([^/]*\)$#\1 \3#p'
}

# Sets REV to the revision release directory $1's manifest names (the line `  "revision": "…",`
# near its top), or to nothing; read by the shell, without a process, up to the file list.
shipit_manifest_revision() {
  REV=
  [ -f "$1/.shipit/manifest.json" ] || return 0
  while IFS= read -r line; do
    case $line in
      '  "revision": "'*'",')
        REV=${line#'  "revision": "'}
        REV=${REV%'",'}
        return 0
        ;;
      '  "files": '*) return 0 ;;
    esac
  done < "$1/.shipit/manifest.json"
}

# Removes the releases named as arguments (never `current`) and every virtualenv no remaining
# release uses; reports one `removed:` fact each and the KiB that frees, and sets REMOVED to the
# ids it removed (for the log: never one it did not). They are renamed into
# .shipit/trash (same filesystem) at once and deleted in the background, then the static files
# only the shared store still links: the run does not wait for the disk.
shipit_remove_releases() {
  trash="$D/.shipit/trash"
  bin="$trash/$(date +%s).$$"
  live=$(shipit_live_id)
  REMOVED=
  for id in "$@"; do
    if [ -d "$D/releases/$id" ] && [ "$live" != "$id" ]; then
      shipit_discard "$D/releases/$id" "$bin"
      shipit_fact "removed:$id" release
      REMOVED="$REMOVED $id"
    fi
  done
  used=" $(shipit_release_venvs | sed 's/.* //' | tr '\n' ' ')"
  for venv in "$D"/venvs/*; do
    [ -d "$venv" ] || continue
    case $used in *" ${venv##*/} "*) continue ;; esac
    shipit_discard "$venv" "$bin"
    shipit_fact "removed:venv:${venv##*/}" venv
  done
  # du counts a file linked several times once, under the first argument it meets it in: what
  # only the discarded files and the shared store link is what deleting them frees.
  freed=0
  if [ -d "$bin" ]; then
    freed=$(du -sk "$D/releases" "$bin" "$D/shared" 2>/dev/null | sed -n 2p | cut -f1)
  fi
  shipit_fact freed_kib "${freed:-0}"
  (
    trap '' HUP PIPE
    rm -rf "${trash:?}"/*
    if [ -d "$D/shared/.static" ]; then
      find "$D/shared/.static" -type f -links 1 -exec rm -f {} +
    fi
  ) </dev/null >/dev/null 2>&1 3<&- &
}

# shipit_discard DIR BIN: renames DIR into the trash directory BIN (deleted in the background,
# see shipit_remove_releases), or deletes it here when it cannot be renamed there.
shipit_discard() {
  if ! { mkdir -p "$2" && mv "$1" "$2/" 2>/dev/null; }; then rm -rf "$1"; fi
}

# Releases whose app servers and processes still stop in the background, one a line.
shipit_draining_releases() { shipit_pms draining; }

step_facts() {
  shipit_require_current_link
  shipit_fact user "$(id -un)"
  shipit_fact uid "$(id -u)"
  shipit_inventory
  if [ -f "$(shipit_archive)" ]; then shipit_fact archive present; else shipit_fact archive missing; fi
  if command -v uv >/dev/null 2>&1; then shipit_fact uv "$(command -v uv)"; fi
}

# step_prune ID...: removes releases the keep policy chose, then gives the lock back. A deploy
# right after another may choose a release whose app servers still stop in the background (its
# begin does not wait for them): those are waited for first.
step_prune() {
  shipit_require_lock
  stopping=" $(shipit_draining_releases | tr '\n' ' ')"
  for id in "$@"; do
    case $stopping in
      *" $id "*)
        step_reap wait
        break
        ;;
    esac
  done
  shipit_remove_releases "$@"
  if [ -n "$REMOVED" ]; then OP=prune shipit_log "removed$REMOVED"; fi
  shipit_unlock
}

step_inventory() {
  [ -d "$D/releases" ] || { echo "nothing deployed under $D"; exit 0; }
  shipit_inventory sizes
}

# A rollback, which starts a release's app server, first asks the process manager what a
# deploy's layout asks it (pm_NAME_require: its control command, and under systemd that the
# units' names are not another deploy_to's).
step_require_releases() {
  [ -d "$D/releases" ] || { echo "nothing is deployed under $D"; exit 1; }
  shipit_require_current_link
  if [ "$OP" = rollback ] && [ "$APP" = 1 ]; then shipit_pm require; fi
}

step_remove() {
  shipit_require_lock
  shipit_remove_releases "$@"
  shipit_log "removed${REMOVED:- nothing}"
  shipit_unlock
}

# step_reap [wait]: what earlier runs left stopping, under every process manager. A stop still
# under way is left to finish, its releases counted in use (see shipit_draining_releases: a
# rollback or `releases --prune` never prunes them), or with `wait` waited for: before a
# rollback starts a release's programs again, and before a deploy prunes a release still
# stopping (step_prune).
step_reap() { shipit_pms reap "$@"; }
