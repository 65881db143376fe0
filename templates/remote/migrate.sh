# shellcheck shell=sh
# Migrations: migrate (skipped or deferred when provably nothing changed), and a rollback's
# comparison and unapply.

# Hash of every migration file (`*/migrations/*.py`) of release $1 and of the packages in its
# venv, by paths relative to each: releases with the same migrations hash the same. A venv never
# changes once built (other requirements build another), so its part is worked out once (a walk
# of thousands of files) and kept in the venv.
shipit_migrations_hash() {
  {
    (cd "$1" && find . -path ./.venv -prune -o -path '*/migrations/*.py' -type f \
      -exec sha256sum {} + | LC_ALL=C sort)
    kept=$1/.venv/.shipit-migrations
    if [ -f "$kept" ] && [ -f "$1/.venv/.shipit-complete" ]; then
      cat "$kept"
    else
      venv_part=$(cd "$1/.venv/" && find . -path '*/migrations/*.py' -type f \
        -exec sha256sum {} + | LC_ALL=C sort | sha256sum | cut -c1-32)
      printf '%s\n' "$venv_part"
      if [ -f "$1/.venv/.shipit-complete" ]; then
        printf '%s\n' "$venv_part" > "$kept.tmp" 2>/dev/null && mv -f "$kept.tmp" "$kept"
      fi
    fi
  } | sha256sum | cut -c1-32
}

# Whether migrate has provably nothing to do: the live release recorded (.shipit/migrated) a
# complete migrate of the same migration files (hash $1), against the same database, whose
# migration table has not changed since. Unknown (a first deploy, no record, a dangling
# `current`, a database that cannot be read) is never provably nothing.
shipit_migrate_done() {
  shipit_migrate_files_same "$1" || return 1
  "$R/.venv/bin/python" -c "$PY_MIGRATE" state "$MANAGE" "$R/.shipit/database" || return 1
  shipit_migrate_database_same
}

# The part of shipit_migrate_done that needs no database: the migration files hash ($1) as
# those of the live release's complete migrate.
shipit_migrate_files_same() {
  [ -n "$PREVIOUS" ] && [ -f "$D/$PREVIOUS/.shipit/migrated" ] || return 1
  [ "$(shipit_value migrations "$D/$PREVIOUS/.shipit/migrated")" = "$1" ]
}

# The rest: the database, as py/migrate.py `state` found it ($R/.shipit/database), is the one the
# live release migrated, its migration table unchanged since.
shipit_migrate_database_same() {
  [ -f "$R/.shipit/database" ] && ! grep -q '^applied=unknown' "$R/.shipit/database" || return 1
  grep -v '^migrations=' "$D/$PREVIOUS/.shipit/migrated" | cmp -s - "$R/.shipit/database"
}

shipit_migrate_skip() {
  echo "migrate: skipped, no migration changed since ${PREVIOUS##*/}"
  shipit_fact migrate "skipped, no migration changed since ${PREVIOUS##*/}"
  cp "$D/$PREVIOUS/.shipit/showmigrations" "$R/.shipit/showmigrations" 2>/dev/null || true
}

# The migration gate (py/gate.py, GATE=refuse|warn|allow|off): judges the migrations migrate is
# about to apply against the release still live while they run. What it found is kept in
# $R/.shipit/gate (shown by the deploy log's outcome when allowed); a refusal ends the step
# before anything is applied. The migrations it holds for after the switch (GATE_AFTER and the
# marks it reads) are listed in $R/.shipit/after-switch, and reported as the fact after_switch.
shipit_gate() {
  rm -f "$R/.shipit/after-switch"
  [ "$GATE" != off ] || return 0
  used=
  if [ -n "$PREVIOUS" ] && [ -d "$D/$PREVIOUS/.venv/" ]; then
    used=$R/.shipit/live-uses.json
    shipit_release_python "$D/$PREVIOUS" "$PY_GATE" uses "$MANAGE" "$used" ||
      { echo "migration gate: cannot read what the live release ${PREVIOUS##*/} uses"; exit 1; }
  fi
  if "$R/.venv/bin/python" -c "$PY_GATE" judge "$MANAGE" "$GATE" "$GATE_STRICT" "$GATE_ALLOW" \
    "$GATE_AFTER" "$used" "$R/.shipit/after-switch" > "$R/.shipit/gate" 2>&1; then
    status=0
  else
    status=$?
  fi
  cat "$R/.shipit/gate"
  case $status in
    0)
      if [ -s "$R/.shipit/after-switch" ]; then
        shipit_fact after_switch "$(shipit_held)"
      fi
      ;;
    3) echo "migration gate: refused, nothing was migrated"; exit 1 ;;
    *) echo "migration gate: failed (status $status), nothing was migrated"; exit 1 ;;
  esac
}

shipit_migrate_run() {
  shipit_gate
  shipit_snapshot_before_migrate
  shipit_migrate_apply "$R/.shipit/after-switch"
  shipit_fact migrate ran
}

# shipit_migrate_apply [HELD]: py/migrate.py's `run` in the release (every migration but those
# the file HELD lists), writing what the database is now and its plan for the next deploy.
shipit_migrate_apply() {
  rm -f "$R/.shipit/database" "$R/.shipit/showmigrations"
  "$R/.venv/bin/python" -c "$PY_MIGRATE" run "$MANAGE" \
    "$R/.shipit/database" "$R/.shipit/showmigrations" "$@"
}

# The migrations the gate held for after the switch, on one line.
shipit_held() { tr '\n' ' ' < "$R/.shipit/after-switch" | sed 's/ $//'; }

# step_migrate_after_switch: applies the migrations the gate held for after the switch
# ($R/.shipit/after-switch), once every host serves this release, under migrate's advisory
# lock. The switch stands whatever happens: a failure is reported, never switched back.
step_migrate_after_switch() {
  if [ ! -s "$R/.shipit/after-switch" ]; then
    echo "no migration was held for after the switch"
    return 0
  fi
  cd "$R" || exit 1
  shipit_load_env "$R"
  umask 027
  HASH=$(shipit_value migrations "$R/.shipit/migrated")
  shipit_migrate_apply || {
    echo "the migrations held for after the switch failed: $(shipit_held)"
    echo "release $ID stays live; fix the cause, then apply them with \`shipit run -t $TARGET --primary -- ./manage.py migrate\`"
    exit 1
  }
  rm -f "$R/.shipit/after-switch"
  shipit_migrate_record "$HASH"
  shipit_fact migrate_after_switch ran
}

# Records what migrate found (migration files hash $1, the database) for the next deploy.
shipit_migrate_record() {
  { printf 'migrations=%s\n' "$1"; cat "$R/.shipit/database"; } > "$R/.shipit/migrated"
}

# Where the pid of the database check step_migrate defers is kept (see shipit_background_dir).
shipit_deferred_pid_file() { printf '%s.migrate' "$(shipit_background_dir)"; }

# The pid of the deferred database check while it runs; fails once it is gone.
shipit_deferred_pid() { shipit_job_pid "$(shipit_deferred_pid_file)"; }

# step_migrate [always|defer]: `migrate`, unless nothing provably changed (see
# shipit_migrate_done); `always` runs it anyway. With `defer`, when the migration files are the
# live release's, the database is read in the background while the app server starts, and
# step_migrate_check decides. Records what it found in $R/.shipit/migrated for the next deploy.
step_migrate() {
  shipit_require_lock
  cd "$R" || exit 1
  [ -f "$MANAGE" ] || { echo "$MANAGE not found in the release"; exit 1; }
  shipit_load_env "$R"
  # A database file migrate creates (SQLite) is not world-readable.
  umask 027
  HASH=$(shipit_migrations_hash "$R")
  if [ "${1:-}" = defer ] && shipit_migrate_files_same "$HASH"; then
    rm -f "$R/.shipit/database"
    printf '%s\n' "$HASH" > "$R/.shipit/migrate-deferred"
    (
      trap '' HUP PIPE
      "$R/.venv/bin/python" -c "$PY_MIGRATE" state "$MANAGE" "$R/.shipit/database.tmp" &&
        mv -f "$R/.shipit/database.tmp" "$R/.shipit/database"
    ) </dev/null >/dev/null 2>&1 3<&- &
    shipit_job_record "$!" "$(shipit_deferred_pid_file)"
    echo "no migration file changed since ${PREVIOUS##*/}: the database is read while the app server starts (step migrate-check)"
    return 0
  fi
  if [ "${1:-}" != always ] && shipit_migrate_done "$HASH"; then
    shipit_migrate_skip
  else
    shipit_migrate_run
  fi
  shipit_migrate_record "$HASH"
}

# Ends what step_migrate deferred: once its read of the database is done, migrate is skipped
# if the database is unchanged since the live release migrated it. Otherwise (a database
# migrated or replaced by hand since) the new release's app server and processes, started
# meanwhile, are stopped, migrate runs, and they start again: they never serve before migrate.
step_migrate_check() {
  if [ ! -f "$R/.shipit/migrate-deferred" ]; then
    echo "nothing to check: migrate ran or was skipped before the app server started"
    return 0
  fi
  HASH=$(cat "$R/.shipit/migrate-deferred")
  while shipit_deferred_pid > /dev/null; do sleep 0.02; done
  rm -f "$(shipit_deferred_pid_file)" "$R/.shipit/migrate-deferred"
  if shipit_migrate_database_same; then
    shipit_migrate_skip
  else
    echo "the database changed since ${PREVIOUS##*/} migrated it: stopping the new app server, migrating, starting it again"
    shipit_stop_new_app
    (
      cd "$R" || exit 1
      shipit_load_env "$R"
      umask 027
      shipit_migrate_run
    )
    step_start_app
  fi
  shipit_migrate_record "$HASH"
}

# Whether the new app server and processes cannot be judged yet: the database check
# step_migrate deferred (waited for if it still runs) found the database changed, so migrate
# must run first; step_migrate_check then starts them again.
shipit_migrate_pending() {
  [ -f "$R/.shipit/migrate-deferred" ] || return 1
  while shipit_deferred_pid > /dev/null; do sleep 0.02; done
  if shipit_migrate_database_same; then return 1; fi
  echo "the database changed since ${PREVIOUS##*/} migrated it: not judged before migrate (step migrate-check)"
}

# Stops the database check step_migrate deferred (a failed or cut-off prepare).
shipit_stop_deferred() {
  if pid=$(shipit_deferred_pid); then kill -TERM "$pid" 2>/dev/null || true; fi
  rm -f "$(shipit_deferred_pid_file)"
}

# Whether the plans the live release and release $ID recorded when they migrated
# (.shipit/showmigrations) answer the rollback's comparison: both recorded one, and the database
# is as the live release left it (its record of the migration table, the apps and the database
# still hold, read with the live release's settings).
shipit_plans_recorded() {
  L="$D/current"
  [ -f "$L/.shipit/showmigrations" ] && [ -f "$R/.shipit/showmigrations" ] &&
    [ -f "$L/.shipit/migrated" ] || return 1
  (umask 027 && shipit_release_python "$L" "$PY_MIGRATE" state "$MANAGE" "$D/.shipit/database.now") || return 1
  ! grep -q '^applied=unknown' "$D/.shipit/database.now" &&
    grep -v '^migrations=' "$L/.shipit/migrated" | cmp -s - "$D/.shipit/database.now"
}

# Reports the migrations the database has applied (asked of the live release, or of the
# database's own table when `current` dangles) and those the target release knows, in plan order;
# from what the releases recorded when they migrated, when that still holds.
step_migrations() {
  if [ -d "$D/current/" ] && shipit_plans_recorded; then
    echo "migrations: as recorded by $(shipit_live_id) and $ID (the database has not been migrated since)"
    LIVE=$(cat "$D/current/.shipit/showmigrations")
  elif [ -d "$D/current/" ]; then
    LIVE=$(shipit_manage "$D/current" showmigrations --plan 2>&1) ||
      { printf '%s\n' "$LIVE"; echo "showmigrations failed in the live release"; exit 1; }
  else
    echo "current's release is gone: reading the applied migrations through release $ID"
    LIVE=$(shipit_release_python "$R" "$PY_APPLIED" "$MANAGE" 2>&1) ||
      { printf '%s\n' "$LIVE"; echo "cannot read the applied migrations through release $ID"; exit 1; }
  fi
  printf '%s\n' "$LIVE" | sed -n 's/^\[X\]  *//p' | while read -r m; do shipit_fact "applied:$m" 1; done
  if [ -f "$R/.shipit/showmigrations" ]; then
    KNOWN=$(cat "$R/.shipit/showmigrations")
  else
    KNOWN=$(shipit_manage "$R" showmigrations --plan 2>&1) ||
      { printf '%s\n' "$KNOWN"; echo "showmigrations failed in release $ID"; exit 1; }
  fi
  printf '%s\n' "$KNOWN" | sed -n 's/^\[.\]  *//p' | {
    n=0
    while read -r m; do
      n=$((n + 1))
      shipit_fact "known:$(printf %06d "$n")" "$m"
    done
  }
}

# step_unapply APP TO [APP TO]...: unapplies with the live release's code, which knows how.
step_unapply() {
  shipit_require_lock
  while [ "$#" -ge 2 ]; do
    shipit_manage "$D/current" migrate "$1" "$2" --noinput
    shift 2
  done
}

# A rollback that does not complete after unapplying migrates the live schema forward again
# (UNAPPLIED is set on the primary from the moment unapplying is planned: migrating forward
# when nothing was unapplied yet applies nothing).
shipit_remigrate() {
  [ "$UNAPPLIED" = 1 ] || return 0
  if [ -L "$D/current" ] && shipit_manage "$D/current" migrate --noinput; then
    echo "migrated the live release's schema forward again"
  fi
}
