"""The Fabric peer of benches/wagtail.rs: the seed project's fabfile deploy flow (see the seed's
"Deployment" section), driven by Fabric 3 from PyPI over one SSH connection with one channel per
step, as Fabric's `run`/`put` do.

Build: the project's tracked files (`git archive HEAD`) plus the environment selector, gzipped.
Deploy: upload the archive to /tmp, make a timestamped release directory, unpack it there, create
a virtualenv in it and pip-install the environment's requirements, collectstatic, migrate, upload
the nginx and supervisor configs, stop the running app, link `current`, start the app, reload
nginx. The one thing added to the seed's flow is the shared `var` directory linked into the
release (where the site keeps its SQLite database), so that the database outlives a release as
the seed's PostgreSQL does.

Usage: python wagtail_fabfile.py JSON  (the bench passes every value in one JSON object).
Prints `step NAME SECONDS` for each step and `channels N` on stderr.
"""

import io
import json
import subprocess
import sys
import tarfile
import time

from fabric import Connection

cfg = json.loads(sys.argv[1])
D = cfg["deploy_to"]
ID = cfg["release"]
R = f"{D}/releases/{ID}"
SETTINGS = "DJANGO_SETTINGS_MODULE=mysite.settings.selected"
channels = 0
last = time.monotonic()


def lap(name):
    global last
    now = time.monotonic()
    print(f"step {name} {now - last:.3f}", file=sys.stderr, flush=True)
    last = now


def run(name, command):
    global channels
    channels += 1
    c.run(command, hide=True, in_stream=False)
    lap(name)


def put(name, local, remote):
    global channels
    channels += 1
    c.put(local, remote)
    lap(name)


# build
archive = f"{cfg['local_dir']}/mysite-fab-{ID}.tar.gz"
raw = subprocess.run(
    ["git", "-C", cfg["root"], "archive", "--format=tar", "HEAD"],
    check=True,
    capture_output=True,
).stdout
with tarfile.open(archive, "w:gz") as out:
    with tarfile.open(fileobj=io.BytesIO(raw)) as src:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
    selector = b"from .production import *  # noqa: F401,F403\n"
    info = tarfile.TarInfo("mysite/settings/selected.py")
    info.size = len(selector)
    info.mtime = int(time.time())
    out.addfile(info, io.BytesIO(selector))
lap("build")

c = Connection(
    cfg["host"],
    user=cfg["user"],
    port=cfg["port"],
    connect_kwargs={
        "key_filename": cfg["key"],
        "look_for_keys": False,
        "allow_agent": False,
    },
)
c.open()
lap("connect")

remote_archive = f"/tmp/mysite-fab-{ID}.tar.gz"
put("upload", archive, remote_archive)
run("mkdir", f"mkdir -p {R} {D}/shared/var")
run("unpack", f"tar -xzf {remote_archive} -C {R} && ln -s {D}/shared/var {R}/var")
run("virtualenv", f"{cfg['python']} -m venv {R}/env")
run(
    "pip",
    f"{R}/env/bin/pip install -q --disable-pip-version-check -r {R}/requirements/deployment.txt",
)
run("collectstatic", f"cd {R} && {SETTINGS} env/bin/python manage.py collectstatic --noinput")
run("migrate", f"cd {R} && {SETTINGS} env/bin/python manage.py migrate --noinput")
put("upload-nginx", io.StringIO(cfg["nginx_conf"]), cfg["nginx_site"])
put("upload-supervisor", io.StringIO(cfg["supervisor_conf"]), cfg["supervisor_file"])
ctl = cfg["ctl"]
program = cfg["program"]
if cfg["first"]:
    # The seed's provisioning installs the program once; the bench's first run does it here.
    run("link", f"ln -sfn {R} {D}/current")
    run("start", f"{ctl} update {program}")
else:
    run("stop", f"{ctl} stop {program}")
    run("link", f"ln -sfn {R} {D}/current")
    run("start", f"{ctl} start {program}")
run("reload-nginx", cfg["nginx_reload"])
c.close()
print(f"channels {channels}", file=sys.stderr)
