"""Database snapshots: taken before a migrate that applies something, and restored on demand.

Run by the shell as `python -c "$PY_SNAPSHOT" MODE MANAGE ...`, in a release, with its venv
and environment, on the primary:

- `take MANAGE DIR NAME RELEASE WHEN`: the default database into DIR/NAME.dump (PostgreSQL,
  `pg_dump -Fc`) or DIR/NAME.sqlite3 (SQLite, the sqlite3 `.backup()` API), 0600, and
  DIR/NAME.meta (`key=value` lines: release, engine, bytes, taken, seconds, applied). With WHEN
  `pending`, nothing is taken (exit 0, and it says so) unless migrate has a migration to apply.
- `restore MANAGE FILE`: the snapshot FILE back into the default database.

The connection is the one Django's settings give (`DATABASES['default']`); a PostgreSQL
password reaches pg_dump and pg_restore through PGPASSWORD in their environment, never their
arguments or any output.
"""

import os
import subprocess
import sys
import time
import warnings


def database():
    warnings.simplefilter("ignore")
    from django.conf import settings

    db = settings.DATABASES["default"]
    engine = str(db.get("ENGINE") or "")
    if "postgresql" in engine or "postgis" in engine:
        return "postgresql", db
    if "sqlite3" in engine:
        return "sqlite", db
    sys.exit("snapshots support PostgreSQL and SQLite, not %s" % engine)


def pg_env(db):
    env = dict(os.environ)
    for key, name in [("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER"),
                      ("NAME", "PGDATABASE"), ("PASSWORD", "PGPASSWORD")]:
        value = db.get(key)
        if value:
            env[name] = str(value)
        else:
            env.pop(name, None)
    return env


def pg(command, db):
    out = subprocess.run(command, env=pg_env(db), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
    if out.returncode != 0:
        print(out.stdout, end="")
        sys.exit("%s failed (status %d)" % (command[0], out.returncode))


def applied():
    from django.db import DEFAULT_DB_ALIAS, connections

    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
        return ["%s.%s" % row for row in cursor.fetchall()]


def pending():
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


def take(directory, name, release, when):
    import django

    engine, db = database()
    django.setup()
    if when == "pending" and not pending():
        print("snapshot: migrate has nothing to apply, none taken")
        return
    try:
        state = applied()
    except Exception:
        state = []
    started = time.time()
    os.umask(0o077)
    if engine == "postgresql":
        path = os.path.join(directory, name + ".dump")
        pg(["pg_dump", "-Fc", "--no-owner", "-f", path + ".tmp"], db)
    else:
        import sqlite3

        path = os.path.join(directory, name + ".sqlite3")
        source = sqlite3.connect(str(db["NAME"]))
        target = sqlite3.connect(path + ".tmp")
        with target:
            source.backup(target)
        target.close()
        source.close()
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)
    seconds = time.time() - started
    size = os.path.getsize(path)
    with open(os.path.join(directory, name + ".meta.tmp"), "w") as out:
        out.write("release=%s\nengine=%s\nfile=%s\nbytes=%d\ntaken=%s\nseconds=%.3f\napplied=%s\n" % (
            release, engine, os.path.basename(path), size,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), seconds, " ".join(state)))
    os.replace(os.path.join(directory, name + ".meta.tmp"), os.path.join(directory, name + ".meta"))
    print("snapshot: %s (%s, %d bytes, %.2f s, %d migrations applied)" % (
        name, engine, size, seconds, len(state)))


def restore(path):
    engine, db = database()
    if engine == "postgresql":
        if not path.endswith(".dump"):
            sys.exit("%s is not a PostgreSQL snapshot" % os.path.basename(path))
        pg(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
            "-d", str(db.get("NAME") or ""), path], db)
    else:
        import sqlite3

        if not path.endswith(".sqlite3"):
            sys.exit("%s is not a SQLite snapshot" % os.path.basename(path))
        source = sqlite3.connect(path)
        target = sqlite3.connect(str(db["NAME"]))
        with target:
            source.backup(target)
        target.close()
        source.close()
    print("restored %s into the %s database" % (os.path.basename(path), engine))


mode = sys.argv.pop(1)
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
if mode == "take":
    take(*sys.argv[2:6])
else:
    restore(sys.argv[2])
