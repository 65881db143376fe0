# shellcheck shell=sh
# The lock: a directory holding who took it and which process holds it (`info`). It is made
# complete beside its place and renamed into it (rename(2) onto a lock that exists fails), so
# no run ever sees a lock without its holder. The holder is the nearest ancestor of this script
# that is not a shell: the SSH session (the same process for every script of one connection)
# or, locally, shipit itself. While it lives, the deploy that took the lock is running.

shipit_holder() {
  pid=$PPID
  while [ "${pid:-1}" -gt 1 ]; do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || break
    case "$comm" in
      sh|dash|bash|zsh|ksh|mksh|busybox|sudo|su|env) ;;
      *) printf '%s %s' "$pid" "$(shipit_starttime "$pid")"; return 0 ;;
    esac
    pid=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f2)
  done
  printf '%s %s' "$PPID" "$(shipit_starttime "$PPID")"
}

# Reads the lock once and judges it: LOCK_RECORD is its record, LOCK_LIVE 1 when it is live.
# Every judgement of one lock (who holds it, whether that run lives, whether it is a hold) reads
# this one copy, so that a lock given back or taken again meanwhile is never judged from the
# fields of two locks, or of none. Fails when there is no lock.
#
# A lock judged dead must still be there once judged: a run gives its lock back before its
# holder ends, so a lock whose holder is gone and which is gone too was given back just then,
# not left behind (the run it refused was told to --break-lock a lock that no longer existed);
# it is read again (ten times at most, then reported as last read). A directory without its
# record (an older shipit made it first and wrote the holder after) leaves LOCK_RECORD empty;
# it is read twice before it is judged so, since a lock given back and taken again between the
# record and the directory would look like one.
shipit_lock_read() {
  lock_reads=0
  while [ "$lock_reads" -lt 10 ]; do
    lock_reads=$((lock_reads + 1))
    LOCK_LIVE=0
    if ! LOCK_RECORD=$(cat "$LOCK/info" 2>/dev/null); then
      [ -d "$LOCK" ] || return 1
      LOCK_RECORD=$(cat "$LOCK/info" 2>/dev/null) || LOCK_RECORD=
    fi
    if shipit_lock_alive || shipit_lock_watched; then
      LOCK_LIVE=1
      return 0
    fi
    [ -d "$LOCK" ] && [ "$(shipit_value token "$LOCK/info")" = "$(shipit_lock_field token)" ] &&
      return 0
  done
  return 0
}

# A field of the lock as shipit_lock_read read it.
shipit_lock_field() {
  while IFS= read -r line; do
    case $line in
      "$1="*)
        printf '%s\n' "${line#"$1"=}"
        return 0
        ;;
    esac
  done <<EOF
$LOCK_RECORD
EOF
}

# Whether the lock read is live: held with `shipit lock acquire` (until `shipit lock release`),
# or the process that took it still runs. A lock without its holder (an older shipit made the
# directory first and wrote the holder after) is live while it is younger than a minute.
shipit_lock_alive() {
  if [ -z "$LOCK_RECORD" ]; then
    [ -n "$(find "$LOCK" -maxdepth 0 -mmin -1 2>/dev/null)" ]
    return
  fi
  [ "$(shipit_lock_field held)" = 1 ] && return 0
  pid=$(shipit_lock_field holder_pid)
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] &&
    [ "$(shipit_starttime "$pid")" = "$(shipit_lock_field holder_start)" ]
}

# Whether the lock read belongs to a prepared host's run that left a watch still running (see
# step_await_switch): the watch gives the lock back itself, so the lock is live until then.
shipit_lock_watched() {
  watched=$(shipit_lock_field token)
  [ -n "$watched" ] || return 1
  shipit_job_pid "$D/.shipit/await-switch.$watched" > /dev/null ||
    shipit_job_pid "$D/.shipit/await-switch.$watched.abort" > /dev/null
}

shipit_lock_live() { [ "$LOCK_LIVE" = 1 ]; }

# Whether the run that holds the lock still runs (its holder only: a watch it left does not
# count, see step_await_switch).
shipit_lock_holder_alive() {
  LOCK_RECORD=$(cat "$LOCK/info" 2> /dev/null) && shipit_lock_alive
}

shipit_lock_holder() {
  if [ -z "$LOCK_RECORD" ]; then
    printf 'by a run that has not recorded itself yet'
    return 0
  fi
  printf 'by %s since %s' "$(shipit_lock_field by)" "$(shipit_lock_field since)"
  if [ "$(shipit_lock_field held)" = 1 ]; then
    printf ', held: %s' "$(shipit_lock_field message)"
    return 0
  fi
  what="$(shipit_lock_field op) $(shipit_lock_field release)"
  if [ "$what" != " " ]; then printf ', %s' "$what"; fi
}

# Reports the lock read that this run cannot take: who holds it, whether it is live, whether it
# is a hold.
shipit_lock_facts() {
  shipit_fact locked "$(shipit_lock_holder)"
  if shipit_lock_live; then shipit_fact lock_live 1; else shipit_fact lock_live 0; fi
  if [ "$(shipit_lock_field held)" = 1 ]; then shipit_fact lock_held 1; fi
}

# Waits up to LOCK_WAIT seconds while another run holds a live lock; returns when the lock is
# gone (or dead: waiting would not free it), or the time is up.
shipit_lock_wait() {
  [ "${LOCK_WAIT:-0}" -gt 0 ] || return 0
  deadline=$(($(date +%s) + LOCK_WAIT))
  said=
  while shipit_lock_read && shipit_lock_live && [ "$(date +%s)" -lt "$deadline" ]; do
    if [ -z "$said" ]; then
      echo "waiting up to ${LOCK_WAIT}s for the lock held $(shipit_lock_holder)"
      said=1
    fi
    sleep 1
  done
}

shipit_own_lock() { [ "$(shipit_value token "$LOCK/info")" = "$TOKEN" ]; }

# Refuses to go on when another run broke this run's lock: nothing may be changed any more.
shipit_require_lock() {
  shipit_own_lock && return 0
  echo "the lock on $D is no longer ours (another run broke it); changing nothing more"
  shipit_fact lock_lost 1
  exit 1
}

shipit_unlock() {
  if shipit_own_lock && shipit_remove_lock "$TOKEN"; then shipit_fact unlocked 1; fi
}

# shipit_remove_lock TOKEN: takes the lock whose token is TOKEN off its name at once (renamed
# aside, then deleted), and only that lock: one given back and taken again meanwhile is put
# back. Deleting it where it stands would show, between its record and its directory, a lock
# without its holder (which counts as one being taken), and a run renaming its own lock onto
# that empty directory would succeed, making rm fail. Fails when it removed nothing.
shipit_remove_lock() {
  away="$D/.shipit/lock.gone.$TOKEN"
  rm -rf "$away"
  mv -T "$LOCK" "$away" 2>/dev/null || return 1
  if [ "$(shipit_value token "$away/info")" != "$1" ]; then
    mv -T "$away" "$LOCK" 2>/dev/null || rm -rf "$away"
    return 1
  fi
  rm -rf "$away"
}

# Takes the lock (exit $LOCKED when another run holds it). BREAK=dead removes a lock whose holder is
# gone; BREAK=force removes any lock. Only the lock judged is removed, and said so.
step_lock() {
  mkdir -p "$D/.shipit" 2>/dev/null || true
  if [ "$BREAK" != none ] && shipit_lock_read; then
    if shipit_lock_live && [ "$BREAK" != force ]; then
      shipit_lock_facts
      exit "$LOCKED"
    fi
    if shipit_lock_live; then judged="still running"; else judged="no longer connected"; fi
    judged="$(shipit_lock_holder), $judged"
    if shipit_remove_lock "$(shipit_lock_field token)"; then
      shipit_fact broke_lock "$judged"
    fi
  fi
  new="$D/.shipit/lock.new.$TOKEN"
  rm -rf "$new"
  mkdir "$new" 2>/dev/null || { echo "cannot create $LOCK as $(id -un): is $D writable?"; exit 1; }
  shipit_lock_info > "$new/info"
  vanished=0
  while ! mv -T "$new" "$LOCK" 2>/dev/null; do
    # The lock that was there was given back before it could be read: try again (a rename that
    # keeps failing with no lock there is not a lock of another run).
    if ! shipit_lock_read; then
      vanished=$((vanished + 1))
      [ "$vanished" -lt 50 ] && continue
      rm -rf "$new"
      echo "cannot create $LOCK as $(id -un): is $D writable?"
      exit 1
    fi
    if [ "${LOCK_WAIT:-0}" -gt 0 ] && shipit_lock_live; then
      shipit_lock_wait
      LOCK_WAIT=0
      shipit_lock_info > "$new/info"
      continue
    fi
    rm -rf "$new"
    shipit_lock_facts
    exit "$LOCKED"
  done
  if [ "$OP" = lock ]; then shipit_log "acquired: $LOCK_MESSAGE"; fi
}

# The holder's record: this run, the process that holds the lock while it lives, and for
# `shipit lock acquire` that it is held until `shipit lock release`, whatever happens to this
# session.
shipit_lock_info() {
  holder=$(shipit_holder)
  printf 'token=%s\nby=%s\nsince=%s\nop=%s\nrelease=%s\nholder_pid=%s\nholder_start=%s\n' \
    "$TOKEN" "$DEPLOYER" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$OP" "$ID" "${holder% *}" \
    "${holder#* }"
  if [ "$OP" = lock ]; then printf 'held=1\nmessage=%s\n' "$LOCK_MESSAGE"; fi
}

# `shipit lock status`: who holds the lock, changing nothing.
step_lock_status() {
  if shipit_lock_read; then shipit_lock_facts; else shipit_fact unlocked 1; fi
}

# `shipit lock release`: gives back a lock held with `shipit lock acquire`, or one whose run is
# gone; a live run's lock is refused (exit $LOCKED: that run gives it back itself).
# The lock judged is the one removed: when it was given back or taken again meanwhile, the lock
# now there is judged afresh.
step_lock_release() {
  while shipit_lock_read; do
    if [ "$(shipit_lock_field held)" != 1 ] && shipit_lock_live; then
      shipit_lock_facts
      exit "$LOCKED"
    fi
    holder=$(shipit_lock_holder)
    if shipit_remove_lock "$(shipit_lock_field token)"; then
      shipit_fact released "$holder"
      shipit_log "released: the lock held $holder"
      return 0
    fi
  done
  echo "$D is not locked"
  shipit_fact was_unlocked 1
}

step_check_lock() {
  shipit_switch_claim || exit 1
  shipit_own_lock || { echo "the lock on $D is no longer ours; not switching"; shipit_fact lock_lost 1; exit 1; }
}

# Gives the lock back at the end of a run that switched (a rollback; a deploy's prune does).
step_unlock() { shipit_unlock; }

# Gives the lock back, changing nothing else: a run that changed nothing on this host leaves
# no record here.
step_release_lock() { shipit_unlock; }

# A step of `begin` or a lock-only script failed.
on_lock_failure() { shipit_unlock; }
