# shellcheck shell=sh
# Migrations: migrate (skipped or deferred when provably nothing changed), and a rollback's
# comparison and unapply.

# The migrations the database's table records as applied, one `app.name` a line, whatever
# code knows them; used when `current`'s release is gone and cannot be asked.
SHIPIT_APPLIED='import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import django
django.setup()
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
    print("[X]  %s.%s" % (app, name))
'

# Python run by step_migrate after `migrate`, before SHIPIT_DB_STATE: what `showmigrations
# --plan` would print now, into the file named by its third argument, for a rollback to answer
# its migration comparison without asking Django again (see step_migrations).
SHIPIT_PLAN='
from django.db.migrations.loader import MigrationLoader
loader = MigrationLoader(connections[DEFAULT_DB_ALIAS])
plan, seen = [], set()
for target in loader.graph.leaf_nodes():
    for key in loader.graph.forwards_plan(target):
        if key not in seen:
            seen.add(key)
            plan.append(key)
with open(sys.argv[3], "w") as out:
    for key in plan:
        out.write("[%s]  %s.%s\n" % ("X" if key in loader.applied_migrations else " ", key[0], key[1]))
'

# Python run by step_migrate after `migrate`, and alone to decide whether migrate may be
# skipped (and by step_migrations whether a rollback may trust what releases recorded): what
# decides what migrate does besides the migration files, as lines into the file named by its
# second argument. `apps=`: a hash of INSTALLED_APPS, MIGRATION_MODULES and DATABASE_ROUTERS;
# `database=`: a hash of each database alias's engine, name, host and port (never a password;
# an SQLite file by its real path); `applied=`: a hash of every row of the default database's
# migration table (any migrate or unapply since changes it; `unknown` when it cannot be read).
# Alone it imports the settings only (no django.setup()), which is what makes checking cheap.
SHIPIT_DB_STATE='
import hashlib, os, sys, warnings
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
warnings.simplefilter("ignore")
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
def digest(value):
    return hashlib.sha256(repr(value).encode()).hexdigest()[:32]
ident = []
for alias in sorted(settings.DATABASES):
    db = settings.DATABASES[alias]
    name = str(db.get("NAME") or "")
    if "sqlite" in str(db.get("ENGINE")) and name and not name.startswith((":", "file:")):
        name = os.path.realpath(name)
    ident.append((alias, str(db.get("ENGINE")), name, str(db.get("HOST") or ""), str(db.get("PORT") or "")))
apps = (list(settings.INSTALLED_APPS), sorted(getattr(settings, "MIGRATION_MODULES", {}).items()),
        [str(r) for r in getattr(settings, "DATABASE_ROUTERS", [])])
applied = "unknown"
try:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT id, app, name FROM django_migrations ORDER BY id")
        applied = digest([tuple(row) for row in cursor.fetchall()])
except Exception:
    pass
with open(sys.argv[2], "w") as out:
    out.write("apps=%s\ndatabase=%s\napplied=%s\n" % (digest(apps), digest(ident), applied))
'

# Python run by step_migrate: `migrate --noinput`, holding a PostgreSQL advisory lock for the
# whole run when the database is PostgreSQL, so that two runs (of shipit or of anything else
# using the same key) never migrate one database at the same time. Django takes no lock itself.
SHIPIT_MIGRATE='import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import django
django.setup()
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
KEY = 7236969237430035567
lock = None
if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
    lock = connections.create_connection(DEFAULT_DB_ALIAS)
    with lock.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [KEY])
        if not cursor.fetchone()[0]:
            print("waiting for another migration of this database to finish", flush=True)
            cursor.execute("SELECT pg_advisory_lock(%s)", [KEY])
    print("holding the database migration lock", flush=True)
call_command("migrate", interactive=False)
if lock is not None:
    lock.close()
'

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
  "$R/.venv/bin/python" -c "$SHIPIT_DB_STATE" "$MANAGE" "$R/.shipit/database" || return 1
  shipit_migrate_database_same
}

# The part of shipit_migrate_done that needs no database: the migration files hash ($1) as
# those of the live release's complete migrate.
shipit_migrate_files_same() {
  [ -n "$PREVIOUS" ] && [ -f "$D/$PREVIOUS/.shipit/migrated" ] || return 1
  [ "$(shipit_value migrations "$D/$PREVIOUS/.shipit/migrated")" = "$1" ]
}

# The rest: the database, as SHIPIT_DB_STATE found it ($R/.shipit/database), is the one the
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

shipit_migrate_run() {
  rm -f "$R/.shipit/database" "$R/.shipit/showmigrations"
  "$R/.venv/bin/python" -c "$SHIPIT_MIGRATE$SHIPIT_PLAN$SHIPIT_DB_STATE" "$MANAGE" \
    "$R/.shipit/database" "$R/.shipit/showmigrations"
  shipit_fact migrate ran
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
      "$R/.venv/bin/python" -c "$SHIPIT_DB_STATE" "$MANAGE" "$R/.shipit/database.tmp" &&
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
  (umask 027 && shipit_release_python "$L" "$SHIPIT_DB_STATE" "$D/.shipit/database.now") || return 1
  ! grep -q '^applied=unknown' "$D/.shipit/database.now" &&
    grep -v '^migrations=' "$L/.shipit/migrated" | cmp -s - "$D/.shipit/database.now"
}

# Reports the migrations the database has applied (asked of the live release, or of the
# database's own table when `current` dangles) and those the target release knows, in plan order;
# from what the releases recorded when they migrated, when that still holds.
step_migrations() {
  if [ -d "$D/current/" ] && shipit_plans_recorded; then
    echo "migrations: as recorded by $(readlink "$D/current" | sed 's#.*/##') and $ID (the database has not been migrated since)"
    LIVE=$(cat "$D/current/.shipit/showmigrations")
  elif [ -d "$D/current/" ]; then
    LIVE=$(shipit_manage "$D/current" showmigrations --plan 2>&1) ||
      { printf '%s\n' "$LIVE"; echo "showmigrations failed in the live release"; exit 1; }
  else
    echo "current's release is gone: reading the applied migrations through release $ID"
    LIVE=$(shipit_release_python "$R" "$SHIPIT_APPLIED" 2>&1) ||
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
