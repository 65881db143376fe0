"""Django's migrate, and what decides whether it has anything to do.

Run by the shell as `python -c "$PY_MIGRATE" MODE MANAGE DATABASE [PLAN]`, in the release,
with its venv and environment:

- `state`: what decides what migrate does besides the migration files, as lines into the
  file DATABASE. `apps=`: a hash of INSTALLED_APPS, MIGRATION_MODULES and DATABASE_ROUTERS;
  `database=`: a hash of each database alias's engine, name, host and port (never a
  password; an SQLite file by its real path); `applied=`: a hash of every row of the default
  database's migration table (any migrate or unapply since changes it; `unknown` when it
  cannot be read). It imports the settings only (no django.setup()), which keeps it cheap.
- `run`: `migrate --noinput` (with a fourth argument HELD, a file of migrations the gate holds
  for after the switch, one `app.name` a line: each app only up to its last migration not held,
  so nothing held, and nothing that needs one, is applied), holding a PostgreSQL advisory lock
  for the whole run when the database is PostgreSQL, so that two runs (of shipit or of anything
  else using the same key) never migrate one database at the same time (Django takes no lock
  itself); then what
  `showmigrations --plan` would print now, into the file PLAN, for a rollback to answer its
  migration comparison without asking Django again; then `state`.
"""

import hashlib
import os
import sys
import warnings

# The advisory lock's key, shared with every migrate that uses it.
KEY = 7236969237430035567


def targets(held):
    """`(app, migration)` pairs that apply every unapplied migration but the `held` ones (and
    what depends on them, which the gate holds too): per app, its last migration not held."""
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    last = {}
    for migration, backwards in plan:
        key = (migration.app_label, migration.name)
        if not backwards and "%s.%s" % key not in held:
            last[key[0]] = key[1]
    return sorted(last.items())


def migrate(held_file=None):
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import DEFAULT_DB_ALIAS, connections

    held = set()
    if held_file and os.path.exists(held_file):
        with open(held_file) as f:
            held = set(f.read().split())

    lock = None
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        lock = connections.create_connection(DEFAULT_DB_ALIAS)
        with lock.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [KEY])
            if not cursor.fetchone()[0]:
                print("waiting for another migration of this database to finish", flush=True)
                cursor.execute("SELECT pg_advisory_lock(%s)", [KEY])
        print("holding the database migration lock", flush=True)
    if held:
        for app, name in targets(held):
            call_command("migrate", app, name, interactive=False)
        print("left for after the switch: %s" % " ".join(sorted(held)), flush=True)
    else:
        call_command("migrate", interactive=False)
    if lock is not None:
        lock.close()


def plan(path):
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connections[DEFAULT_DB_ALIAS])
    keys, seen = [], set()
    for target in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(target):
            if key not in seen:
                seen.add(key)
                keys.append(key)
    with open(path, "w") as out:
        for key in keys:
            applied = "X" if key in loader.applied_migrations else " "
            out.write("[%s]  %s.%s\n" % (applied, key[0], key[1]))


def digest(value):
    return hashlib.sha256(repr(value).encode()).hexdigest()[:32]


def state(path):
    warnings.simplefilter("ignore")
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, connections

    ident = []
    for alias in sorted(settings.DATABASES):
        db = settings.DATABASES[alias]
        name = str(db.get("NAME") or "")
        if "sqlite" in str(db.get("ENGINE")) and name and not name.startswith((":", "file:")):
            name = os.path.realpath(name)
        ident.append(
            (alias, str(db.get("ENGINE")), name, str(db.get("HOST") or ""), str(db.get("PORT") or ""))
        )
    apps = (
        list(settings.INSTALLED_APPS),
        sorted(getattr(settings, "MIGRATION_MODULES", {}).items()),
        [str(r) for r in getattr(settings, "DATABASE_ROUTERS", [])],
    )
    applied = "unknown"
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT id, app, name FROM django_migrations ORDER BY id")
            applied = digest([tuple(row) for row in cursor.fetchall()])
    except Exception:
        pass
    with open(path, "w") as out:
        out.write("apps=%s\ndatabase=%s\napplied=%s\n" % (digest(apps), digest(ident), applied))


mode = sys.argv.pop(1)
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
if mode == "run":
    migrate(sys.argv[4] if len(sys.argv) > 4 else None)
    plan(sys.argv[3])
state(sys.argv[2])
