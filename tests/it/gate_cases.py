"""Runs the migration gate's classification (templates/remote/py/gate.py) on one operation of each
kind the gate names, against a project state with one model, and prints one JSON line per case:
{"case": ..., "vendor": ..., "verdicts": [[verdict, what], ...]}, first with the live release's
code unknown (taken to use everything), then against live code that no longer uses what some of
them change ("vendor" is then "sqlite, live code without it"). tests/it/gate.rs asserts them.

Run as `python gate_cases.py GATE_PY` with a python that has Django and psycopg.
"""

import importlib.util
import json
import sys

import django
from django.conf import settings

settings.configure(INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
django.setup()

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import models
from django.db.migrations import operations as ops
from django.db.migrations.state import ModelState, ProjectState

spec = importlib.util.spec_from_file_location("gate", sys.argv[1])
gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate)


def state():
    s = ProjectState()
    s.add_model(
        ModelState(
            "shop",
            "Item",
            [
                ("id", models.AutoField(primary_key=True)),
                ("name", models.CharField(max_length=50)),
                ("note", models.TextField(null=True)),
                ("price", models.IntegerField()),
                ("code", models.CharField(max_length=10, db_column="item_code")),
            ],
        )
    )
    return s


CASES = [
    ("remove_field", ops.RemoveField("item", "note")),
    ("remove_field_db_column", ops.RemoveField("item", "code")),
    ("rename_field", ops.RenameField("item", "name", "title")),
    ("rename_model", ops.RenameModel("Item", "Product")),
    ("delete_model", ops.DeleteModel("Item")),
    ("alter_model_table", ops.AlterModelTable("item", "shop_things")),
    ("alter_field_type", ops.AlterField("item", "price", models.DecimalField(max_digits=9, decimal_places=2))),
    ("alter_field_not_null", ops.AlterField("item", "note", models.TextField(default=""))),
    ("alter_field_null", ops.AlterField("item", "price", models.IntegerField(null=True))),
    ("alter_field_longer", ops.AlterField("item", "name", models.CharField(max_length=200))),
    ("alter_field_shorter", ops.AlterField("item", "name", models.CharField(max_length=20))),
    ("alter_field_unique", ops.AlterField("item", "name", models.CharField(max_length=50, unique=True))),
    ("add_field_not_null", ops.AddField("item", "stock", models.IntegerField(default=0))),
    ("add_field_db_default", ops.AddField("item", "stock", models.IntegerField(db_default=0))),
    ("add_field_null", ops.AddField("item", "stock", models.IntegerField(null=True))),
    ("add_index", ops.AddIndex("item", models.Index(fields=["name"], name="item_name_idx"))),
    (
        "add_index_concurrently",
        AddIndexConcurrently("item", models.Index(fields=["name"], name="item_name_idx")),
    ),
    (
        "add_unique_constraint",
        ops.AddConstraint("item", models.UniqueConstraint(fields=["name"], name="item_name_uniq")),
    ),
    ("alter_unique_together", ops.AlterUniqueTogether("item", {("name", "price")})),
    ("run_python", ops.RunPython(lambda apps, schema_editor: None)),
    ("run_sql", ops.RunSQL("UPDATE shop_item SET price = 0")),
    ("run_sql_drop", ops.RunSQL("ALTER TABLE shop_item DROP COLUMN note")),
    (
        "create_model",
        ops.CreateModel("Order", [("id", models.AutoField(primary_key=True))]),
    ),
    ("alter_model_options", ops.AlterModelOptions("item", {"ordering": ["name"]})),
    (
        "separate_database_and_state",
        ops.SeparateDatabaseAndState(database_operations=[ops.RemoveField("item", "note")]),
    ),
]

# What the live release's models use when they no longer read `note` or write `stock`, `note`
# may not be NULL in them, and there is no Item model at all.
WITHOUT_NOTE = {"shop_item": {"id": False, "name": False, "price": False, "item_code": False}}
NOTE_NOT_NULL = {"shop_item": dict(WITHOUT_NOTE["shop_item"], note=False)}
WRITES_STOCK = {"shop_item": dict(WITHOUT_NOTE["shop_item"], stock=False)}
LIVE = [
    ("remove_field", WITHOUT_NOTE),
    ("separate_database_and_state", WITHOUT_NOTE),
    ("alter_field_not_null", NOTE_NOT_NULL),
    ("add_field_not_null", WRITES_STOCK),
    ("delete_model", {}),
    ("rename_field", {"shop_item": {"id": False}}),
]

for vendor in ("postgresql", "sqlite"):
    for case, op in CASES:
        verdicts = [[v, what] for v, what, _fix in gate.classify(op, "shop", state(), vendor)]
        print(json.dumps({"case": case, "vendor": vendor, "verdicts": verdicts}))
ops_by_case = dict(CASES)
for case, columns in LIVE:
    live = gate.Live(columns)
    verdicts = [[v, what] for v, what, _fix in gate.classify(ops_by_case[case], "shop", state(), "sqlite", live)]
    print(json.dumps({"case": case, "vendor": "sqlite, live code without it", "verdicts": verdicts}))
