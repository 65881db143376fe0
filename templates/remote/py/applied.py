"""The migrations the database's table records as applied, one `[X]  app.name` a line, whatever
code knows them: a rollback reads them so when `current`'s release is gone and cannot be asked.

Run as `python -c "$PY_APPLIED" MANAGE`, in the release rolled back to.
"""

import os
import sys


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
    import django

    django.setup()
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        print("[X]  %s.%s" % (app, name))


main()
