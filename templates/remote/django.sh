# shellcheck shell=sh
# Django's settings (asked once, reused when nothing they read changed), hooks, and
# collectstatic with the shared static store.

# Python run by step_settings before asking Django: the answer the live release ($3) got, when
# everything it depends on (its .shipit/django.inputs) hashes the same in this release; its
# paths inside the live release are moved to this one. Exits 1 when it cannot be reused.
SHIPIT_SETTINGS_CACHED='
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
'

# Python before SHIPIT_DJANGO_SETTINGS and SHIPIT_SETTINGS_CACHED: shipit_settings_key(INPUTS),
# a hash of what the settings probe's answer depends on: the environment as the probe starts
# (Django sets TZ) but for what differs from one session or release to the next, the venv,
# every file name of the release (a new local_settings.py counts) and the content of every
# input (paths relative to the release, or absolute; `dir:PATH` for a directory's listing),
# the release's revision in it left out (the settings selector records it: a new commit is
# not new settings; SHIPIT_SETTINGS_CACHED refuses an answer that names the revision). As the
# probe, it records the files and directories opened (an audit hook) in shipit_read.
SHIPIT_SETTINGS_INPUTS='import hashlib, json, os, sys
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
'

# Python run by step_settings after SHIPIT_SETTINGS_INPUTS: what the release's settings say
# about static and media files, one NAME=value line each, into the file named as its second
# argument, and what that came from into the third.
SHIPIT_DJANGO_SETTINGS='
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
dirs = [d[1] if isinstance(d, (list, tuple)) else d for d in getattr(settings, "STATICFILES_DIRS", [])]
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
lines["STATIC_CONFIG"] = repr((get("STATIC_URL"), inside(get("STATIC_ROOT") or "/"), finders,
    [(d[0] if isinstance(d, (list, tuple)) else "", r) for d, r in zip(getattr(settings, "STATICFILES_DIRS", []), rel_dirs)],
    repr(storage))).replace("\n", " ")
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
'

# shipit_django_value NAME RELEASE: NAME's value in the release's settings answer
# (.shipit/django), or nothing.
shipit_django_value() { shipit_value "$1" "$2/.shipit/django"; }

# Asks the release's settings (with its venv and environment) where static and media files
# live and under which URLs, so collectstatic and nginx use exactly that. Setting Django up
# takes about a second: the live release's answer is reused when nothing it came from changed
# (see SHIPIT_SETTINGS_CACHED).
step_settings() {
  shipit_load_env "$R"
  cd "$R" || exit 1
  rm -f "$R/.shipit/django.inputs"
  if [ -n "$PREVIOUS" ] && [ -f "$D/$PREVIOUS/.shipit/django.inputs" ] &&
    "$R/.venv/bin/python" -c "$SHIPIT_SETTINGS_INPUTS$SHIPIT_SETTINGS_CACHED" "$MANAGE" \
      "$R/.shipit/django" "$D/$PREVIOUS" "$R/.shipit/django.inputs" 2>/dev/null; then
    echo "settings: skipped, nothing they read changed since ${PREVIOUS##*/} (its answer reused)"
    shipit_fact settings "skipped, nothing they read changed since ${PREVIOUS##*/}"
  else
    "$R/.venv/bin/python" -c "$SHIPIT_SETTINGS_INPUTS
shipit_hooked = hasattr(sys, 'addaudithook') and sys.addaudithook(shipit_audit) is None
$SHIPIT_DJANGO_SETTINGS" "$MANAGE" "$R/.shipit/django" "$R/.shipit/django.inputs"
    shipit_fact settings ran
  fi
  while IFS= read -r line; do printf '  %s\n' "$line"; done < "$R/.shipit/django"
}

# The shared static store: every file of the recent releases' STATIC_ROOT, hard-linked, so a
# page rendered by the previous release still finds its hashed CSS after the switch or a
# rollback. Preparing adds only new names (the live release's files are left as they are);
# switching makes the live release's files win (`force`).
shipit_bridge_static() {
  rel=$(shipit_below "$(shipit_django_value STATIC_ROOT "$1")" "$1")
  [ -n "$rel" ] || return 0
  root="$1/$rel"
  [ -d "$root" ] || return 0
  mkdir -p "$D/shared/.static"
  if [ "${2:-}" = force ]; then
    # BusyBox cp fails on a file the store already links (a release whose collectstatic was
    # skipped links the same files): that one is already where it belongs.
    cp -alf "$root/." "$D/shared/.static/" 2>/dev/null ||
      [ -z "$(find "$root" -type f -links 1 | head -n 1)" ] ||
      { echo "cannot link the static files of $1 into $D/shared/.static"; return 1; }
  else
    cp -aln "$root/." "$D/shared/.static/" 2>/dev/null || cp -al -n "$root/." "$D/shared/.static/"
  fi
}

# step_hook COMMAND: a user's hook, in the release, with its venv first on PATH, the app's
# environment, and what the run is about: SHIPIT_RELEASE, SHIPIT_REVISION, SHIPIT_TARGET,
# SHIPIT_HOSTS (every host of the target, space-separated), SHIPIT_DEPLOYER (user@machine).
step_hook() {
  shipit_load_env "$R"
  cd "$R" || exit 1
  PATH="$R/.venv/bin:$PATH"
  SHIPIT_REVISION=$REVISION
  # TARGET comes from the preamble (shellcheck takes it for a misspelt `target`).
  # shellcheck disable=SC2153
  SHIPIT_TARGET=$TARGET
  SHIPIT_HOSTS=$HOSTS
  SHIPIT_DEPLOYER=$DEPLOYER
  export PATH SHIPIT_REVISION SHIPIT_TARGET SHIPIT_HOSTS SHIPIT_DEPLOYER
  eval "$1"
}

# Hash of what collectstatic reads for release $1: the static settings, the venv (its key names
# python and the requirements), every file under a `static/` directory of the release and in
# its STATICFILES_DIRS (by paths relative to the release). Prints nothing when that cannot be
# known (see SHIPIT_DJANGO_SETTINGS: other finders, a directory outside the release).
shipit_static_hash() {
  [ "$(shipit_django_value STATIC_SKIPPABLE "$1")" = 1 ] || return 0
  static_rel=$(shipit_below "$(shipit_django_value STATIC_ROOT "$1")" "$1")
  {
    shipit_django_value STATIC_CONFIG "$1"
    readlink "$1/.venv"
    cd "$1" || exit 1
    find . -path ./.venv -prune -o -path "./$static_rel" -prune -o -path ./.shipit -prune -o \
      -path '*/static/*' \( -type f -o -type l \) -exec sha256sum {} + | LC_ALL=C sort
    while IFS= read -r line; do
      case $line in STATICFILES_DIR=*) ;; *) continue ;; esac
      dir=${line#STATICFILES_DIR=}
      printf 'dir %s\n' "$dir"
      [ -d "$dir" ] && find "$dir" \( -type f -o -type l \) -exec sha256sum {} + | LC_ALL=C sort
    done < "$1/.shipit/django"
  } | sha256sum | cut -c1-32
}

# collectstatic, unless its inputs hash the same as the live release's (.shipit/static): then
# the live release's STATIC_ROOT is hard-linked into this one, which is what collectstatic would
# write, byte for byte.
step_collectstatic() {
  if [ "$(shipit_django_value STATICFILES "$R")" = 0 ]; then
    echo "collectstatic skipped: django.contrib.staticfiles is not installed"
    return 0
  fi
  if [ -z "$(shipit_django_value STATIC_ROOT "$R")" ]; then
    echo "collectstatic skipped: the settings have no STATIC_ROOT"
    return 0
  fi
  umask 022
  HASH=$(shipit_static_hash "$R")
  rel=$(shipit_below "$(shipit_django_value STATIC_ROOT "$R")" "$R")
  if [ -n "$HASH" ] && [ -n "$rel" ] && [ -n "$PREVIOUS" ] && [ ! -e "$R/$rel" ] &&
    [ -d "$D/$PREVIOUS/$rel" ] && [ "$(cat "$D/$PREVIOUS/.shipit/static" 2>/dev/null)" = "$HASH" ] &&
    parent="$R/$rel" && mkdir -p "${parent%/*}" && cp -al "$D/$PREVIOUS/$rel" "$R/$rel"; then
    echo "collectstatic: skipped, static inputs unchanged since ${PREVIOUS##*/} (its files hard-linked)"
    shipit_fact collectstatic "skipped, static inputs unchanged since ${PREVIOUS##*/}"
  else
    shipit_manage "$R" collectstatic --noinput
    shipit_fact collectstatic ran
    # Files the live release links are in the shared store already.
    shipit_bridge_static "$R"
  fi
  if [ -n "$HASH" ]; then printf '%s\n' "$HASH" > "$R/.shipit/static"; fi
}
