"""What the release's settings say about static and media files, and whether the live
release's answer can be reused (setting Django up takes about a second).

Run by step_settings as `python -c "$PY_SETTINGS" MODE MANAGE ANSWER ...`, in the release, with
its venv and environment:

- `probe MANAGE ANSWER INPUTS`: asks Django. Writes one NAME=value line each into ANSWER
  (STATICFILES, STATIC_URL, STATIC_ROOT, MEDIA_URL, MEDIA_ROOT, and for step_collectstatic
  STATIC_SKIPPABLE, STATIC_CONFIG and STATICFILES_DIR lines), and into INPUTS what that came
  from: the key (below) and the files and directories read, for the next release to reuse it.
- `cached MANAGE ANSWER LIVE INPUTS`: the answer the live release LIVE got, when everything it
  depends on (its .shipit/django.inputs) hashes the same in this release; its paths inside the
  live release moved to this one. Exits 1 when it cannot be reused.

The key, shipit_settings_key(INPUTS), is a hash of what the answer depends on: the environment
as the probe starts (Django sets TZ) but for what differs from one session or release to the
next, the venv, every file name of the release (a new local_settings.py counts) and the
content of every input (paths relative to the release, or absolute; `dir:PATH` for a
directory's listing), the release's revision in it left out (the settings selector records it:
a new commit is not new settings; `cached` refuses an answer that names the revision).
"""

import hashlib
import json
import os
import sys

MODE = sys.argv.pop(1)
release = os.path.dirname(os.path.abspath(sys.argv[1]))
shipit_skip = {os.path.realpath(p) for p in (os.path.join(release, ".venv"), sys.base_prefix,
    sys.base_exec_prefix, sys.prefix)}
shipit_environ = sorted((k, v) for k, v in os.environ.items()
    if not k.startswith(("SSH_", "SHIPIT_")) and k not in ("PWD", "OLDPWD", "SHLVL", "_"))
def shipit_revision(top):
    try:
        with open(os.path.join(top, ".shipit", "manifest.json")) as f:
            revision = str(json.load(f).get("revision") or "")
    except (OSError, ValueError, AttributeError):
        return ""
    return revision if len(revision) >= 7 else ""
def shipit_settings_key(inputs):
    h = hashlib.sha256()
    def add(*parts):
        h.update(repr(parts).encode() + b"\n")
    revision = shipit_revision(release).encode()
    add(shipit_environ)
    add(os.readlink(os.path.join(release, ".venv")), sys.argv[1])
    for top, dirs, files in os.walk(release):
        rel = os.path.relpath(top, release)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__"
            and not (rel == "." and d in (".venv", ".shipit")))
        add(rel, dirs, sorted(files))
    for path in sorted(inputs):
        try:
            if path.startswith("dir:"):
                add(path, sorted(os.listdir(path[4:])))
            else:
                with open(os.path.join(release, path), "rb") as f:
                    data = f.read()
                if revision:
                    data = data.replace(revision, b"@@REVISION@@")
                add(path, hashlib.sha256(data).hexdigest())
        except OSError as e:
            add(path, e.errno)
    return h.hexdigest()[:32]
shipit_read = set()
def shipit_audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        # open() gives a mode, os.open() flags (a .pyc Python writes, say): only reads count.
        mode, flags = args[1], args[2]
        if isinstance(mode, str):
            writes = any(c in mode for c in "wax+")
        else:
            writes = bool((flags or 0) & (os.O_WRONLY | os.O_RDWR))
        if not writes:
            shipit_read.add(os.fsdecode(args[0]))
    elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        shipit_read.add("dir:" + os.fsdecode(args[0]))


def allowed_host(settings):
    """The Host header the health check sends by default: the first ALLOWED_HOSTS entry that
    names a host (`.example.com` as `example.com`); empty for `*` or none (then localhost)."""
    for entry in getattr(settings, "ALLOWED_HOSTS", None) or []:
        host = str(entry).lstrip(".")
        if host and host != "*" and not any(c.isspace() for c in host):
            return host
    return ""


def probe():
    # As the probe runs, the files and directories it opens are recorded in shipit_read.
    shipit_hooked = hasattr(sys, "addaudithook") and sys.addaudithook(shipit_audit) is None
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
    import django
    django.setup()
    from django.apps import apps
    from django.conf import settings
    def get(name):
        value = getattr(settings, name, None)
        return "" if value is None else str(value).replace("\n", " ")
    lines = {
        "STATICFILES": "1" if apps.is_installed("django.contrib.staticfiles") else "0",
        "STATIC_URL": get("STATIC_URL"),
        "STATIC_ROOT": get("STATIC_ROOT"),
        "MEDIA_URL": get("MEDIA_URL"),
        "MEDIA_ROOT": get("MEDIA_ROOT"),
        "ALLOWED_HOST": allowed_host(settings),
    }
    # What else collectstatic reads, for step_collectstatic: STATIC_CONFIG sums up the settings
    # (paths relative to the release), STATICFILES_DIR lines name the extra directories. Only
    # Django finders and directories inside the release make the inputs knowable.
    release = os.path.dirname(os.path.abspath(sys.argv[1]))
    def inside(path):
        rel = os.path.relpath(os.path.abspath(str(path)), release)
        return None if rel.startswith("..") else rel
    finders = list(getattr(settings, "STATICFILES_FINDERS", []))
    known = {"django.contrib.staticfiles.finders.FileSystemFinder",
             "django.contrib.staticfiles.finders.AppDirectoriesFinder"}
    dirs_setting = list(getattr(settings, "STATICFILES_DIRS", []))
    dirs = [d[1] if isinstance(d, (list, tuple)) else d for d in dirs_setting]
    rel_dirs = [inside(d) for d in dirs]
    storages = getattr(settings, "STORAGES", {}) or {}
    storage = storages.get("staticfiles") or getattr(settings, "STATICFILES_STORAGE", "")
    backend = str(storage.get("BACKEND", "") if isinstance(storage, dict) else storage)
    try:
        import importlib.util
        origin = importlib.util.find_spec(backend.rpartition(".")[0]).origin
    except Exception:
        origin = None
    # A storage class of the project itself (not of the venv) is code the hash does not cover.
    project_storage = origin is None or not os.path.relpath(
        os.path.realpath(origin), os.path.realpath(release)).startswith("..")
    skippable = (set(finders) <= known and None not in rel_dirs and bool(get("STATIC_ROOT"))
                 and not project_storage)
    lines["STATIC_SKIPPABLE"] = "1" if skippable else "0"
    prefixes = [d[0] if isinstance(d, (list, tuple)) else "" for d in dirs_setting]
    lines["STATIC_CONFIG"] = repr((get("STATIC_URL"), inside(get("STATIC_ROOT") or "/"), finders,
        list(zip(prefixes, rel_dirs)), repr(storage))).replace("\n", " ")
    with open(sys.argv[2], "w") as out:
        for name, value in lines.items():
            out.write("%s=%s\n" % (name, value))
        for rel in rel_dirs:
            if rel is not None:
                out.write("STATICFILES_DIR=%s\n" % rel)
    # What the answer came from, for the next release to reuse it (SHIPIT_SETTINGS_CACHED): the
    # project modules imported and the files and directories read, but those of the venv and of
    # Python itself (the venv key covers them); none when one cannot be hashed.
    inputs = {m.__file__ for m in list(sys.modules.values()) if isinstance(getattr(m, "__file__", None), str)}
    inputs |= {path for path in shipit_read if not path.endswith(".pyc")}
    # Without audit hooks (Python < 3.8) what was read is unknown: nothing is recorded.
    keep, ok = set(), shipit_hooked
    def under(path, top):
        return path == top or path.startswith(top.rstrip("/") + "/")
    for path in inputs:
        real = os.path.realpath(os.path.join(release, path[4:] if path.startswith("dir:") else path))
        if any(under(real, top) for top in shipit_skip):
            continue
        if any(under(real, top) for top in ("/proc", "/dev", "/sys", "/run")):
            ok = False
        elif under(real, os.path.realpath(release)):
            rel = os.path.relpath(real, os.path.realpath(release))
            # .shipit/release holds the release id alone, as SHIPIT_RELEASE does: an answer that
            # depends on it names it, which SHIPIT_SETTINGS_CACHED refuses to reuse.
            if not path.startswith("dir:") and rel != os.path.join(".shipit", "release"):
                keep.add(rel)
        else:
            keep.add(("dir:" if path.startswith("dir:") else "") + real)
    if ok:
        with open(sys.argv[3], "w") as out:
            out.write("key=%s\n" % shipit_settings_key(keep))
            out.writelines("input=%s\n" % path for path in sorted(keep))


def cached():
    live = sys.argv[3]
    with open(os.path.join(live, ".shipit", "django.inputs")) as f:
        record = f.read().splitlines()
    inputs = [line[6:] for line in record if line.startswith("input=")]
    if not record or record[0] != "key=" + shipit_settings_key(inputs):
        sys.exit(1)
    with open(os.path.join(live, ".shipit", "django")) as f:
        answer = f.read()
    for old, new in ((os.path.realpath(live), os.path.realpath(release)), (live, release)):
        answer = answer.replace(old + "/", new + "/").replace(old + "\n", new + "\n")
    # An answer that still names the live release (its id or revision in STATIC_URL, say) is not
    # this one.
    revision = shipit_revision(live)
    if os.path.basename(live) in answer or (revision and revision in answer):
        sys.exit(1)
    with open(sys.argv[2], "w") as out:
        out.write(answer)
    with open(sys.argv[4], "w") as out:
        out.write("\n".join(record) + "\n")


if MODE == "cached":
    cached()
else:
    probe()
