#!/bin/sh
# Boots systemd as PID 1 of new namespaces, for the test harness's SystemdHost
# (tests/support/src/systemd.rs, whose module doc says why each step is here).
#
#   boot.sh outside CGROUP CONSOLE [FROM ONTO]...
#       joins the (new, empty) cgroup v2 directory CGROUP, then runs `boot.sh inside` as PID 1
#       of new pid, mount, cgroup, UTS and IPC namespaces; it is killed when this process dies.
#   boot.sh inside CONSOLE [FROM ONTO]...
#       covers the machine's /run and /dev with its own, bind-mounts each FROM onto ONTO, makes
#       the kernel's settings read-only, mounts its own cgroup tree, and becomes systemd.
#       Every mount is made in the new mount namespace, whose propagation is private: nothing
#       reaches the machine.
set -eu

stage=$1
shift
if [ "$stage" = outside ]; then
    cgroup=$1
    shift
    echo $$ >"$cgroup/cgroup.procs"
    exec unshare --pid --fork --kill-child=KILL --mount --propagation private --mount-proc \
        --cgroup --uts --ipc -- /bin/sh "$0" inside "$@"
fi

console=$1
shift

# /run: systemd's own, empty at each boot.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -m 1777 /run/lock
mkdir -p /run/systemd/journald.conf.d /run/systemd/system-generators /run/systemd/user-generators
# journald: nothing to the kernel's log, syslog, consoles or terminals; small journal files.
cat >/run/systemd/journald.conf.d/shipit-test.conf <<'CONF'
[Journal]
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
SystemMaxFileSize=1M
RuntimeMaxFileSize=1M
CONF
# No generator runs: each is masked by name in the first directory systemd 252 looks in (the
# directories that hold them are also covered by empty ones among the FROM ONTO pairs).
for kind in system user; do
    for dir in /lib/systemd/$kind-generators /usr/lib/systemd/$kind-generators \
        /usr/local/lib/systemd/$kind-generators /etc/systemd/$kind-generators; do
        [ -d "$dir" ] || continue
        for generator in "$dir"/*; do
            [ -e "$generator" ] || continue
            ln -sf /dev/null "/run/systemd/$kind-generators/${generator##*/}"
        done
    done
done

while [ $# -ge 2 ]; do
    mount --bind "$1" "$2"
    shift 2
done

# /dev: a few device nodes of its own, so that what systemd does there (the /dev/log link,
# its devpts and shm) stays in here. PID 1's console is the file CONSOLE.
mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
mknod -m 0666 /dev/null c 1 3
mknod -m 0666 /dev/zero c 1 5
mknod -m 0666 /dev/full c 1 7
mknod -m 0666 /dev/random c 1 8
mknod -m 0666 /dev/urandom c 1 9
mknod -m 0666 /dev/tty c 5 0
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
: >/dev/console
mount --bind "$console" /dev/console

# The kernel's settings (sysctl, sysfs) are the machine's: read-only in here.
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
if [ -e /proc/sysrq-trigger ]; then
    mount --bind /proc/sysrq-trigger /proc/sysrq-trigger
    mount -o remount,bind,ro /proc/sysrq-trigger
fi
mount -o remount,bind,ro /sys
# The cgroup namespace's root is CGROUP: a cgroup2 tree of its own for systemd.
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup

# `container` tells systemd it is not the machine's init: no kernel modules, no console setup.
exec env -i container=shipit-test /lib/systemd/systemd --system --show-status=no
