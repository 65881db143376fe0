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

shipit_lock_field() { shipit_value "$1" "$LOCK/info"; }

# Whether the lock is live: held with `shipit lock acquire` (until `shipit lock release`), or
# the process that took it still runs. A lock without its holder (an older shipit made the
# directory first and wrote the holder after) is live while it is younger than a minute.
shipit_lock_live() {
  if [ ! -f "$LOCK/info" ]; then
    [ -n "$(find "$LOCK" -maxdepth 0 -mmin -1 2>/dev/null)" ]
    return
  fi
  [ "$(shipit_lock_field held)" = 1 ] && return 0
  pid=$(shipit_lock_field holder_pid)
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] &&
    [ "$(shipit_starttime "$pid")" = "$(shipit_lock_field holder_start)" ]
}

shipit_lock_holder() {
  if [ ! -f "$LOCK/info" ]; then
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

# Reports a lock this run cannot take: who holds it, whether it is live, whether it is a hold.
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
  while [ -d "$LOCK" ] && shipit_lock_live && [ "$(date +%s)" -lt "$deadline" ]; do
    if [ -z "$said" ]; then
      echo "waiting up to ${LOCK_WAIT}s for the lock held $(shipit_lock_holder)"
      said=1
    fi
    sleep 1
  done
}

shipit_own_lock() { [ "$(shipit_lock_field token)" = "$TOKEN" ]; }

# Refuses to go on when another run broke this run's lock: nothing may be changed any more.
shipit_require_lock() {
  shipit_own_lock && return 0
  echo "the lock on $D is no longer ours (another run broke it); changing nothing more"
  shipit_fact lock_lost 1
  exit 1
}

shipit_unlock() {
  if shipit_own_lock; then rm -rf "$LOCK"; shipit_fact unlocked 1; fi
}

# Takes the lock (exit $LOCKED when another run holds it). BREAK=dead removes a lock whose holder is
# gone; BREAK=force removes any lock.
step_lock() {
  mkdir -p "$D/.shipit" 2>/dev/null || true
  if [ -d "$LOCK" ] && [ "$BREAK" != none ]; then
    if shipit_lock_live && [ "$BREAK" != force ]; then
      shipit_lock_facts
      exit "$LOCKED"
    fi
    if shipit_lock_live; then
      shipit_fact broke_lock "$(shipit_lock_holder), still running"
    else
      shipit_fact broke_lock "$(shipit_lock_holder), no longer connected"
    fi
    shipit_break_lock
  fi
  new="$D/.shipit/lock.new.$TOKEN"
  rm -rf "$new"
  mkdir "$new" 2>/dev/null || { echo "cannot create $LOCK as $(id -un): is $D writable?"; exit 1; }
  shipit_lock_info > "$new/info"
  while ! mv -T "$new" "$LOCK" 2>/dev/null; do
    [ -d "$LOCK" ] || { rm -rf "$new"; echo "cannot create $LOCK as $(id -un): is $D writable?"; exit 1; }
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

# Removes the lock judged breakable: renamed away first, so that of two runs breaking one lock
# only one does, and only the lock judged (one taken again meanwhile is put back).
shipit_break_lock() {
  judged=$(shipit_lock_field token)
  away="$D/.shipit/lock.broken.$TOKEN"
  rm -rf "$away"
  mv -T "$LOCK" "$away" 2>/dev/null || return 0
  if [ "$(shipit_value token "$away/info")" != "$judged" ]; then
    mv -T "$away" "$LOCK" 2>/dev/null || rm -rf "$away"
    return 0
  fi
  rm -rf "$away"
}

# `shipit lock status`: who holds the lock, changing nothing.
step_lock_status() {
  if [ -d "$LOCK" ]; then shipit_lock_facts; else shipit_fact unlocked 1; fi
}

# `shipit lock release`: gives back a lock held with `shipit lock acquire`, or one whose run is
# gone; a live run's lock is refused (exit $LOCKED: that run gives it back itself).
step_lock_release() {
  if [ ! -d "$LOCK" ]; then
    echo "$D is not locked"
    shipit_fact was_unlocked 1
    return 0
  fi
  if [ "$(shipit_lock_field held)" != 1 ] && shipit_lock_live; then
    shipit_lock_facts
    exit "$LOCKED"
  fi
  holder=$(shipit_lock_holder)
  rm -rf "$LOCK"
  shipit_fact released "$holder"
  shipit_log "released: the lock held $holder"
}

step_check_lock() {
  shipit_own_lock || { echo "the lock on $D is no longer ours; not switching"; shipit_fact lock_lost 1; exit 1; }
}

# Gives the lock back at the end of a run that switched (a rollback; a deploy's prune does).
step_unlock() { shipit_unlock; }

# Gives the lock back, changing nothing else: a run that changed nothing on this host leaves
# no record here.
step_release_lock() { shipit_unlock; }

# A step of `begin` or a lock-only script failed.
on_lock_failure() { shipit_unlock; }
