# shellcheck shell=sh
# The switch: `current` renamed to the new release, the release recorded live, and undoing
# what a failed prepare or switch left (giving up).

# Undoes what preparing left outside the release: the new app server and the nginx site.
shipit_undo_prepare() {
  shipit_stop_new_app
  if [ "$NGINX" = 1 ]; then shipit_restore_site; fi
  shipit_tls_restore
}

# Puts `current` back where it pointed before this script ($PREVIOUS) by the same rename; after
# a first deploy there was nothing, so the new `current` is removed.
shipit_switch_back() {
  if [ -n "$PREVIOUS" ] && [ "$(shipit_live_id)" != "${PREVIOUS##*/}" ]; then
    ln -sfn "$PREVIOUS" "$D/.current.back" && mv -fT "$D/.current.back" "$D/current" &&
      echo "switched current back to $PREVIOUS"
    shipit_bridge_static "$D/$PREVIOUS" force
  elif [ -z "$PREVIOUS" ] && [ -L "$D/current" ]; then
    rm -f "$D/current"
    echo "removed current: this was the first deploy"
  fi
}

step_prepared() { shipit_state prepared; }

# rename(2) of a fresh symlink over `current`: readers see the old or the new release, never
# nothing.
step_switch() {
  ln -sfn "releases/$ID" "$D/.current.$ID"
  mv -fT "$D/.current.$ID" "$D/current"
  echo "current -> releases/$ID (was ${PREVIOUS:-nothing})"
  shipit_bridge_static "$R" force
}

# Records the new release as live: from here on the switch is committed and a failure undoes
# nothing.
step_finish() {
  shipit_require_lock
  shipit_state live
  if [ -n "$PREVIOUS" ] && [ -d "$D/$PREVIOUS/.shipit" ] && [ "$D/$PREVIOUS" != "$R" ]; then
    # Rolling back leaves a release rolled back; rolling forward (`rollback --to` a newer one)
    # leaves a good one, which a later rollback may still go to.
    left=good
    if [ "$OP" = rollback ] && [ "${PREVIOUS##*/}" -gt "$ID" ]; then left=rolled_back; fi
    printf '%s\n' "$left" > "$D/$PREVIOUS/.shipit/state"
  fi
  rm -f "$SITE_CHANGED" "$SITE_BACKUP"
  for dir in "$D"/releases/*; do
    if [ "$dir" = "$R" ] || [ ! -f "$dir/.shipit/state" ]; then continue; fi
    state=
    read -r state < "$dir/.shipit/state" || true
    case $state in
      preparing|prepared)
        echo failed > "$dir/.shipit/state"
        echo "marked ${dir##*/} failed: a deploy of it never finished"
        ;;
    esac
  done
  # Keep the three most recently used archives: a redeploy of one of them uploads nothing.
  # Archive names are sha256 hex: ls is safe here.
  # shellcheck disable=SC2012
  for old in $(cd "$D/.shipit/archives" && ls -1t -- *.tar.gz 2>/dev/null | tail -n +4); do
    rm -f "$D/.shipit/archives/$old"
  done
  if [ "$OP" = rollback ]; then
    shipit_log "ok (from ${PREVIOUS##*/})"
  elif allowed=$(sed -n 's/^gate: allowed.*: //p' "$R/.shipit/gate" 2>/dev/null) && [ -n "$allowed" ]; then
    shipit_log "ok (breaking migrations allowed: $allowed)"
  else
    shipit_log ok
  fi
}

# A fleet's prepared host waits for its switch between two scripts, with none running: the lock
# is held and the new app server runs. step_await_switch leaves a watch there, a detached job
# recorded in its file (shipit_switch_file: its pid and start time), that abandons the release and
# gives the lock back (step_abort) when the switch has not come after PREPARED_TIMEOUT seconds,
# or at once when the run that holds the lock is gone (its holder ended: shipit was killed), so
# that a later run needs no --break-lock. Whoever renames that file first decides: the
# switch's check-lock or an abort (the watch then ends doing nothing), or the watch (which
# renames it `.abort`, adds why, and aborts; the switch then waits for it and refuses).
shipit_switch_file() { printf '%s/.shipit/await-switch.%s' "$D" "$TOKEN"; }

step_await_switch() {
  awaiting=$(shipit_switch_file)
  # Records of watches that are gone (a reboot killed them, or they ended) are left no longer.
  for old in "$D"/.shipit/await-switch.*; do
    [ -f "$old" ] && ! shipit_job_pid "$old" > /dev/null && rm -f "$old"
  done
  : > "$awaiting"
  (
    trap '' HUP PIPE
    shipit_switch_watch "$awaiting"
  ) < /dev/null > /dev/null 2>&1 3<&- &
  shipit_job_record "$!" "$awaiting.tmp"
  mv -f "$awaiting.tmp" "$awaiting"
  echo "waiting up to ${PREPARED_TIMEOUT}s for the switch; then release $ID is abandoned and the lock given back"
}

# shipit_switch_watch FILE: the watch step_await_switch leaves (see there).
shipit_switch_watch() {
  deadline=$(($(date +%s) + PREPARED_TIMEOUT))
  while [ -f "$1" ]; do
    why=
    if ! shipit_own_lock; then
      why="the lock is no longer this run's"
    elif ! shipit_lock_holder_alive; then
      why="the run that prepared it is gone"
    elif [ "$(date +%s)" -ge "$deadline" ]; then
      why="no switch came within ${PREPARED_TIMEOUT}s (prepared_timeout)"
    fi
    if [ -n "$why" ]; then
      mv "$1" "$1.abort" 2> /dev/null || return 0
      printf 'why=%s\n' "$why" >> "$1.abort"
      (
        set -e
        shipit_abandon "$why"
      ) || true
      return 0
    fi
    sleep 1
  done
}

# Takes the watch's file before this run switches or gives its release up; fails when the watch
# took it first (once the watch has given everything up).
shipit_switch_claim() {
  awaiting=$(shipit_switch_file)
  if mv "$awaiting" "$awaiting.claimed" 2> /dev/null; then
    rm -f "$awaiting.claimed"
    return 0
  fi
  # No watch at all: a script that prepares and switches in one exec waits at its own gate.
  [ -f "$awaiting.abort" ] || return 0
  while shipit_job_pid "$awaiting.abort" > /dev/null; do sleep 0.1; done
  echo "this host stopped waiting for the switch ($(shipit_value why "$awaiting.abort")): it abandoned release $ID and gave the lock back"
  shipit_fact gave_up 1
  return 1
}

# step_abort REASON: abandons this run's prepared release on this host because of another host.
step_abort() {
  shipit_switch_claim || return 0
  shipit_abandon "$1"
}

# shipit_abandon REASON: abandons this run's prepared release and gives the lock back (only
# what is this run's: a broken lock's new app server is stopped, nothing else touched).
shipit_abandon() {
  shipit_stop_background
  if ! shipit_own_lock; then
    echo "the lock on $D is no longer ours; leaving everything as it is"
    shipit_stop_new_app
    return 0
  fi
  shipit_remigrate
  shipit_undo_prepare
  shipit_state failed
  shipit_log "aborted: $1"
  shipit_unlock
  echo "release $ID abandoned: $1"
}

# A step before the switch failed.
on_prepare_failure() {
  shipit_stop_background
  if ! shipit_own_lock; then
    shipit_stop_new_app
    return 0
  fi
  shipit_remigrate
  shipit_undo_prepare
  if [ "$OP" = deploy ] && [ "$SHIPIT_FAILED_STEP" = unpack ]; then
    rm -rf "$R"
  elif [ "$OP" = deploy ]; then
    shipit_state failed
  fi
  shipit_log "failed: $SHIPIT_FAILED_STEP"
  shipit_unlock
}

# A step of the switch failed: switch back, unless the switch is committed (the new release was
# recorded live) or the lock is no longer ours (then nothing here is ours to undo).
on_switch_failure() {
  if ! shipit_own_lock; then
    echo "the lock on $D is no longer ours; not switching back"
    shipit_stop_new_app
    return 0
  fi
  if [ "$(cat "$R/.shipit/state" 2>/dev/null)" = live ] &&
    [ "$(shipit_live_id)" = "$ID" ]; then
    echo "release $ID is live; step $SHIPIT_FAILED_STEP failed after the switch, nothing is undone"
    shipit_unlock
    return 0
  fi
  shipit_switch_back
  shipit_undo_prepare
  shipit_remigrate
  if [ "$NGINX" = 1 ]; then eval "$NGINX_RELOAD" >/dev/null 2>&1 || true; fi
  if [ "$OP" = deploy ]; then shipit_state failed; fi
  shipit_log "failed: $SHIPIT_FAILED_STEP (switched back)"
  shipit_unlock
}
