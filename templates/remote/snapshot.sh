# shellcheck shell=sh
# Database snapshots (py/snapshot.py), kept on the primary in $D/.shipit/snapshots: one before a
# migrate that applies something (DB_BACKUP=before-migrate), and `shipit db backup|list|restore`.
# A snapshot is NAME.meta (what py/snapshot.py recorded) beside NAME.dump or NAME.sqlite3; NAME is
# RELEASE-TIME, the release whose migrate it was taken before (or the live one) and when.

# Every snapshot's name, newest first (a snapshot without its .meta is not one yet).
shipit_snapshot_names() {
  for meta in "$D/.shipit/snapshots"/*.meta; do
    [ -f "$meta" ] || continue
    name=${meta##*/}
    printf '%s\n' "${name%.meta}"
  done | LC_ALL=C sort -t- -k2,2r -k1,1r
}

# Removes the oldest snapshots beyond DB_KEEP (0: keeps them all), the .meta first.
shipit_snapshot_prune() {
  [ "${DB_KEEP:-0}" -gt 0 ] || return 0
  snaps=$D/.shipit/snapshots
  shipit_snapshot_names | sed -n "$((DB_KEEP + 1)),\$p" | while read -r name; do
    rm -f "$snaps/$name.meta" "$snaps/$name.dump" "$snaps/$name.sqlite3"
    echo "snapshot: removed $name (keep = $DB_KEEP)"
  done
}

# shipit_snapshot_take DIR RELEASE WHEN: a snapshot of the database, with release DIR's code and
# environment, named after RELEASE; WHEN `pending` takes none unless migrate has something to
# apply. A failure removes what it left and fails the step.
shipit_snapshot_take() {
  snaps=$D/.shipit/snapshots
  (umask 077 && mkdir -p "$snaps")
  name=$2-$(date -u +%Y%m%d%H%M%S)
  shipit_release_python "$1" "$PY_SNAPSHOT" take "$MANAGE" "$snaps" "$name" "$2" "$3" || {
    rm -f "$snaps/$name".*
    echo "snapshot failed: nothing was migrated"
    exit 1
  }
  shipit_snapshot_prune
}

# Before migrate applies anything (after the gate): the snapshot `backup = "before-migrate"` asks.
shipit_snapshot_before_migrate() {
  [ "$DB_BACKUP" = before-migrate ] || return 0
  shipit_snapshot_take "$R" "$ID" pending
}

# `shipit db backup`: a snapshot now, with the live release's code.
step_db_backup() {
  shipit_require_lock
  step_require_current
  shipit_snapshot_take "$D/current" "$(shipit_live_id)" now
  shipit_fact snapshot_taken "$name"
}

# `shipit db list`: one fact per snapshot, newest first: name, release, taken, engine, bytes,
# migrations applied (tab-separated).
step_db_list() {
  snaps=$D/.shipit/snapshots
  n=0
  shipit_snapshot_names | while read -r name; do
    n=$((n + 1))
    m=$snaps/$name.meta
    applied=$(shipit_value applied "$m")
    shipit_fact "snapshot:$(printf %06d "$n")" "$(printf '%s\t%s\t%s\t%s\t%s\t%s' "$name" \
      "$(shipit_value release "$m")" "$(shipit_value taken "$m")" "$(shipit_value engine "$m")" \
      "$(shipit_value bytes "$m")" "$(printf '%s\n' "$applied" | wc -w | tr -d ' ')")"
  done
}

# step_db_restore NAME: snapshot NAME back into the database, with the live release's code (a
# name that is a release id alone: that release's newest snapshot).
step_db_restore() {
  shipit_require_lock
  step_require_current
  snaps=$D/.shipit/snapshots
  name=$1
  if [ ! -f "$snaps/$name.meta" ]; then
    name=$(shipit_snapshot_names | while read -r n; do
      case $n in "$1"-*) printf '%s\n' "$n" && break ;; esac
    done)
  fi
  if [ -z "$name" ] || [ ! -f "$snaps/$name.meta" ]; then
    echo "no snapshot $1 under $snaps (shipit db list names them)"
    exit 1
  fi
  file=$snaps/$(shipit_value file "$snaps/$name.meta")
  shipit_release_python "$D/current" "$PY_SNAPSHOT" restore "$MANAGE" "$file"
  shipit_log "restored snapshot $name"
  shipit_fact restored "$name"
}
