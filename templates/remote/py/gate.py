"""The migration gate: whether the migrations a deploy is about to apply break the release that is
still live while they run.

A deploy migrates before it switches: between the two, the live release's code runs against the
new schema. Dropping or renaming a column or table it reads, making a column it leaves empty NOT
NULL, adding a NOT NULL column its INSERTs omit, or changing a column's type fails its requests;
building an index without CONCURRENTLY on PostgreSQL blocks its writes until the index is built.

What breaks depends on the live release's code: a column it no longer reads may be dropped. So
the gate runs twice, each time with a release's venv and environment:

- `python -c "$PY_GATE" uses MANAGE OUT`, in the live release: the tables and columns its models
  read and write, with whether each may be NULL, as JSON into OUT;
- `python -c "$PY_GATE" judge MANAGE MODE STRICT ALLOW AFTER USES HELD`, in the new release,
  before `migrate`, with USES the file the first wrote (empty: no live release to break):

- MODE: `refuse` (a breaking migration stops the deploy), `warn` (it is reported only) or
  `allow` (`--allow-breaking-migrations`: reported, and recorded as allowed).
- STRICT: `1` when an operation whose effect cannot be known (RunPython, RunSQL that changes
  nothing the gate recognises) counts as breaking.
- ALLOW: migrations (`app.name`, space-separated) the team allows whatever they do.
- AFTER: migrations the team runs after the switch; also those django-safemigrate marks
  `after_deploy` and django-syzygy marks `post_deploy`. They, and every migration after them in
  the same app or depending on one of them, are held: not judged (the live release is gone when
  they run), listed one `app.name` a line in the file HELD for `migrate` to leave out, and
  applied once every host has switched (py/migrate.py `after`). A first deploy holds nothing.

It prints one line per operation that is not compatible, `gate: VERDICT APP.NAME: OPERATION:
what it does` with a `fix:` line, one `gate: after the switch: APP.NAME` line per held
migration, then a summary line. It exits 3 when MODE is `refuse` and
something breaks.
"""

import os
import sys

COMPATIBLE, BREAKING, UNKNOWN = "compatible", "breaking", "unknown"

FIX_STOP_USING = (
    "deploy the code that stops using %s first, then this migration (or run it after the "
    "switch: [targets.T.migrations] after_switch)"
)
FIX_NOT_NULL_ADD = (
    "give the field a database default (db_default=..., Django 5.0+), or add it with null=True "
    "first and make it NOT NULL in a later deploy"
)
FIX_SET_NOT_NULL = (
    "deploy the code that always writes %s first, then this migration"
)
FIX_TYPE = (
    "add a column of the new type beside the old one, deploy the code that writes both and reads "
    "the new one, then drop the old column in a later deploy"
)
FIX_INDEX = (
    "build the index with AddIndexConcurrently (django.contrib.postgres.operations) in a "
    "migration with atomic = False"
)
FIX_UNKNOWN = (
    "check that the live release works with its result, then list it in [targets.T.migrations] "
    "allow"
)


def uses(path):
    """Writes what the release's models read and write: {table: {column: nullable}}."""
    import json

    from django.apps import apps

    found = {}
    for model in apps.get_models(include_auto_created=True):
        columns = found.setdefault(model._meta.db_table, {})
        for field in model._meta.local_concrete_fields:
            columns[field.column] = bool(field.null)
    with open(path, "w") as out:
        json.dump(found, out)


class Live:
    """What the live release's code reads and writes, as `uses` wrote it; `None` (not known)
    assumes it reads everything."""

    def __init__(self, columns):
        self.columns = columns

    def table(self, table):
        return self.columns is None or table in self.columns

    def column(self, table, column):
        return self.columns is None or column in self.columns.get(table, {})

    def nullable(self, table, column):
        return self.columns is None or self.columns.get(table, {}).get(column, True)

    def writes(self, table, column):
        return self.columns is not None and column in self.columns.get(table, {})


def table_of(state, app_label, model_name):
    """The table of a model of `state` (a ProjectState), and the model's state."""
    model = state.models.get((app_label, model_name.lower()))
    if model is None:
        return "%s_%s" % (app_label, model_name.lower()), None
    return model.options.get("db_table") or "%s_%s" % (app_label, model.name_lower), model


def column_of(field, name):
    """The column of an unbound field named `name`."""
    field = field.clone()
    field.set_attributes_from_name(name)
    return field.column


def has_db_default(field):
    from django.db.models import NOT_PROVIDED

    return getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED


def needs_value(field):
    """Whether a new column for `field` refuses the INSERTs of code that does not know it."""
    return not (
        field.null
        or has_db_default(field)
        or field.many_to_many
        or getattr(field, "generated", False)
    )


def shape(field):
    """What of a field decides its column's type."""
    return (
        field.get_internal_type(),
        getattr(field, "max_digits", None),
        getattr(field, "decimal_places", None),
    )


def type_of(field):
    """A field's column type as a person reads it: `CharField(50)`, `DecimalField(9, 2)`."""
    size = [str(v) for v in (getattr(field, "max_length", None),) + shape(field)[1:] if v is not None]
    return "%s(%s)" % (field.get_internal_type(), ", ".join(size)) if size else field.get_internal_type()


def indexed(field):
    return bool(field.unique or field.db_index) and not field.primary_key


def classify(op, app_label, state, vendor, live=None):
    """The verdicts of one operation: a list of (verdict, what it does, fix) with `state` the
    project state before it and `live` ([`Live`]) what the live release's code uses; several
    for an operation that does several things."""
    from django.db.migrations import operations as ops

    live = live or Live(None)
    kind = type(op).__name__
    postgres = vendor == "postgresql"

    def breaks(used, what, fix):
        """BREAKING when the live release uses what the operation changes, else COMPATIBLE."""
        if used:
            return (BREAKING, what, fix)
        return (COMPATIBLE, "%s, which the live release does not use" % what, "")

    if isinstance(op, ops.SeparateDatabaseAndState):
        found = []
        for inner in op.database_operations:
            found.extend(classify(inner, app_label, state, vendor, live))
            inner.state_forwards(app_label, state)
        return found or [(COMPATIBLE, "changes no table", "")]
    if isinstance(op, (ops.RunPython, ops.RunSQL)):
        if isinstance(op, ops.RunSQL):
            sql = op.sql if isinstance(op.sql, (list, tuple)) else [op.sql]
            words = " ".join(" ".join(str(s) for s in sql).upper().split())
            for needle in ("DROP COLUMN", "DROP TABLE", "RENAME ", "SET NOT NULL", " TYPE "):
                if needle in words:
                    return [(BREAKING, "runs SQL that does %s" % needle.strip(), FIX_STOP_USING % "it")]
        return [(UNKNOWN, "runs code whose effect on the live release is unknown", FIX_UNKNOWN)]
    model_name = getattr(op, "model_name", None) or getattr(op, "name", None)
    table, model = table_of(state, app_label, model_name or "")
    dotted = "%s.%s" % (model_name, getattr(op, "name", ""))
    if isinstance(op, ops.RemoveField):
        field = model and model.fields.get(op.name)
        if field is not None and field.many_to_many:
            through = field.db_table or "%s_%s" % (table, op.name)
            return [breaks(live.table(through), 'drops table "%s"' % through, FIX_STOP_USING % dotted)]
        column = column_of(field, op.name) if field else op.name
        what = 'drops column "%s" of table "%s"' % (column, table)
        return [breaks(live.column(table, column), what, FIX_STOP_USING % dotted)]
    if isinstance(op, ops.RenameField):
        old = model and model.fields.get(op.old_name)
        column = column_of(old, op.old_name) if old else op.old_name
        return [
            breaks(
                live.column(table, column),
                'renames column "%s" of table "%s" to "%s"' % (column, table, op.new_name),
                "add the new field beside the old one, deploy the code that uses it, then remove "
                "the old field in a later deploy",
            )
        ]
    if isinstance(op, ops.RenameModel):
        if model is not None and model.options.get("db_table"):
            return [(COMPATIBLE, "renames model %s, whose table keeps its name" % op.old_name, "")]
        return [
            breaks(
                live.table(table),
                'renames table "%s" (model %s to %s)' % (table, op.old_name, op.new_name),
                "set Meta.db_table to the old table name so that the table keeps its name, or "
                "deploy the code that stops using %s first" % op.old_name,
            )
        ]
    if isinstance(op, ops.DeleteModel):
        return [breaks(live.table(table), 'drops table "%s"' % table, FIX_STOP_USING % op.name)]
    if isinstance(op, ops.AlterModelTable):
        return [
            breaks(
                live.table(table),
                'renames table "%s" to "%s"' % (table, op.table),
                FIX_STOP_USING % ("table %s" % table),
            )
        ]
    if isinstance(op, ops.AddField):
        column = column_of(op.field, op.name)
        found = []
        if needs_value(op.field) and live.table(table) and not live.writes(table, column):
            found.append(
                (
                    BREAKING,
                    'adds NOT NULL column "%s" to table "%s" without a database default: the live '
                    "release's INSERTs leave it out" % (column, table),
                    FIX_NOT_NULL_ADD,
                )
            )
        if postgres and indexed(op.field) and not op.field.many_to_many:
            found.append((BREAKING, 'indexes table "%s" without CONCURRENTLY' % table, FIX_INDEX))
        return found or [(COMPATIBLE, 'adds column "%s" to table "%s"' % (column, table), "")]
    if isinstance(op, ops.AlterField):
        old = model and model.fields.get(op.name)
        if old is None:
            return [(UNKNOWN, "alters a field the gate cannot find", FIX_UNKNOWN)]
        new = op.field
        column = column_of(old, op.name)
        used = live.column(table, column)
        found = []
        if column_of(new, op.name) != column:
            found.append(
                breaks(
                    used,
                    'renames column "%s" of table "%s" to "%s"' % (column, table, column_of(new, op.name)),
                    FIX_STOP_USING % dotted,
                )
            )
        if old.null and not new.null:
            what = 'makes column "%s" of table "%s" NOT NULL' % (column, table)
            if used and not live.nullable(table, column):
                found.append((COMPATIBLE, "%s, which the live release always writes" % what, ""))
            else:
                found.append(breaks(used, what, FIX_SET_NOT_NULL % dotted))
        old_shape, new_shape = shape(old), shape(new)
        shorter = (
            old_shape == new_shape
            and getattr(old, "max_length", None) is not None
            and (new.max_length or 0) < old.max_length
        )
        if old_shape != new_shape or shorter:
            found.append(
                breaks(
                    used,
                    'changes the type of column "%s" of table "%s" (%s to %s)'
                    % (column, table, type_of(old), type_of(new)),
                    FIX_TYPE,
                )
            )
        if postgres and indexed(new) and not indexed(old):
            found.append((BREAKING, 'indexes table "%s" without CONCURRENTLY' % table, FIX_INDEX))
        return found or [(COMPATIBLE, 'alters column "%s" of table "%s"' % (column, table), "")]
    if isinstance(op, ops.AlterOrderWithRespectTo) and op.order_with_respect_to:
        return [
            breaks(
                live.table(table) and not live.writes(table, "_order"),
                'adds NOT NULL column "_order" to table "%s" without a database default' % table,
                FIX_NOT_NULL_ADD,
            )
        ]
    if postgres and kind in ("AddIndex", "AlterUniqueTogether", "AlterIndexTogether", "AddConstraint"):
        constraint = getattr(op, "constraint", None)
        together = getattr(op, "unique_together", None) or getattr(op, "index_together", None)
        if kind == "AddIndex" or together or type(constraint).__name__ == "UniqueConstraint":
            return [(BREAKING, 'indexes table "%s" without CONCURRENTLY' % table, FIX_INDEX)]
    return [(COMPATIBLE, op.describe(), "")]


def marked_after(migration, after):
    """Whether the team runs `migration` after the switch: listed in AFTER, or marked by
    django-safemigrate (`safe = Safe.after_deploy`, `Safe.after_deploy()`) or django-syzygy
    (`stage = Stage.POST_DEPLOY`)."""
    key = "%s.%s" % (migration.app_label, migration.name)
    safe = str(getattr(migration, "safe", "")).lower()
    stage = str(getattr(migration, "stage", "")).lower()
    return key in after or "after_deploy" in safe or "post_deploy" in stage


def held_after(plan, after):
    """The migrations of `plan` (in order) that wait for the switch: those marked, and every one
    after them in the same app or depending on one of them."""
    held = []
    for migration in plan:
        key = (migration.app_label, migration.name)
        if (
            marked_after(migration, after)
            or any(tuple(d) in held for d in migration.dependencies)
            or any(app == key[0] for app, _ in held)
        ):
            held.append(key)
    return held


def judge(plan, state, vendor, live, allow, held=()):
    """(key, verdict, what, fix) for each operation of `plan` not `held`; `state` is the project
    state before the plan, and is moved through it."""
    found = []
    for migration in plan:
        key = "%s.%s" % (migration.app_label, migration.name)
        if (migration.app_label, migration.name) in held:
            continue
        for op in migration.operations:
            kind = type(op).__name__
            for verdict, what, fix in classify(op, migration.app_label, state.clone(), vendor, live):
                if key in allow and verdict != COMPATIBLE:
                    verdict, fix = "allowed", ""
                found.append((key, verdict, "%s: %s" % (kind, what), fix))
            op.state_forwards(migration.app_label, state)
    return found


def main():
    command, manage = sys.argv[1:3]
    sys.path.insert(0, os.path.dirname(os.path.abspath(manage)))
    import django

    django.setup()
    if command == "uses":
        uses(sys.argv[3])
        return 0
    mode, strict, allow, after, used, held_file = sys.argv[3:9]
    allow, after = set(allow.split()), set(after.split())
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    targets = executor.loader.graph.leaf_nodes()
    plan = [m for m, backwards in executor.migration_plan(targets) if not backwards]
    if not plan:
        print("gate: no migration to apply")
        return 0
    if not used:
        print("gate: %d migration(s) to apply, no live release to break" % len(plan))
        return 0
    import json

    with open(used) as f:
        live = Live(json.load(f))
    held = held_after(plan, after)
    with open(held_file, "w") as out:
        out.writelines("%s.%s\n" % key for key in held)
    for key in held:
        print("gate: after the switch: %s.%s" % key)
    state = executor._create_project_state(with_applied_migrations=True)
    blocking = []
    for key, verdict, what, fix in judge(plan, state, connection.vendor, live, allow, held):
        if verdict == COMPATIBLE:
            continue
        print("gate: %s %s: %s" % (verdict, key, what))
        if fix:
            print("  fix: %s" % fix)
        if verdict == BREAKING or (verdict == UNKNOWN and strict == "1"):
            blocking.append(key)
    if not blocking:
        now = len(plan) - len(held)
        print("gate: %d migration(s) to apply, none breaks the live release" % now)
        return 0
    names = " ".join(sorted(set(blocking), key=blocking.index))
    if mode == "refuse":
        print("gate: refused: these migrations would break the live release until the switch: %s" % names)
        return 3
    if mode == "allow":
        print("gate: allowed (--allow-breaking-migrations): these may break the live release: %s" % names)
    else:
        print("gate: warning: these migrations may break the live release until the switch: %s" % names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
