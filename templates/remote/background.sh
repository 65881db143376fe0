# shellcheck shell=sh
# Steps in the background: the settings probe and collectstatic need no database, so a deploy
# runs them while `migrate` runs (see plan/deploy.rs, overlaps_migrate). The job writes each
# step's output, status and time to files that step_await reports as the step's own;
# shipit_stop_background ends the job when the script fails or is cut off.

# The job's directory: in /dev/shm (else $TMPDIR or /tmp), not under $D, so that a full
# deploy_to cannot swallow what a failing step said (a full disk is a likely reason for
# collectstatic to fail). Private (0700, see step_background), and named by a hash of the run's
# nonce (SHIPIT_JOB, set beside SHIPIT_NONCE: remote::protocol::job_name): the nonce itself, which step output cannot forge, is
# never in a name any user of the host can list.
shipit_background_dir() {
  for base in /dev/shm "${TMPDIR:-/tmp}" /tmp; do
    if [ -d "$base" ] && [ -w "$base" ]; then break; fi
  done
  printf '%s/shipit-%s' "$base" "$SHIPIT_JOB"
}

# The time since boot in hundredths of a second.
shipit_uptime() {
  read -r t _ < /proc/uptime
  printf '%s' "${t%.*}${t#*.}"
}

# step_background ID FUNCTION [ID FUNCTION]...: runs the functions one after another in a
# background job, each as a step would run (a subshell with `set -e`), until one fails; then it
# writes `done`. The job holds nothing of the connection: its input is /dev/null, its output
# goes to files.
step_background() {
  dir=$(shipit_background_dir)
  # A new private directory: refused if the name is taken.
  (umask 077 && mkdir "$dir")
  printf ' %s' "$@" | sed 's/ step_[a-z_]*//g; s/^ //' > "$dir/steps"
  (
    set +e
    while [ "$#" -ge 2 ]; do
      started=$(shipit_uptime)
      (
        set -e
        "$2"
      ) > "$dir/$1.out" 2>&1
      status=$?
      printf '%s %s\n' "$status" "$(($(shipit_uptime) - started))" > "$dir/$1.tmp"
      mv "$dir/$1.tmp" "$dir/$1.status"
      [ "$status" -eq 0 ] || break
      shift 2
    done
    : > "$dir/done"
  ) < /dev/null > /dev/null 2>&1 3<&- &
  shipit_job_record "$!" "$dir/pid"
  echo "started in the background (pid $!): $(cat "$dir/steps")"
}

# The pid of the background job while it runs; fails once it is gone.
shipit_background_pid() { shipit_job_pid "$(shipit_background_dir)/pid"; }

# step_await ID: waits for step ID of the background job, prints its output (facts included)
# and the time it took, and fails with its status. After the job's last step, its directory
# goes.
step_await() {
  dir=$(shipit_background_dir)
  # The status file is looked for every 10 ms (a test of the shell's own); whether the job
  # still runs (a few processes) every 100 ms.
  polls=0
  while [ ! -f "$dir/$1.status" ]; do
    if [ $((polls % 10)) -eq 0 ] && ! shipit_background_pid > /dev/null; then
      [ -f "$dir/$1.status" ] && break
      cat "$dir/$1.out" 2>/dev/null || true
      echo "$1 did not finish: its background job is gone"
      return 1
    fi
    polls=$((polls + 1))
    sleep 0.01
  done
  cat "$dir/$1.out"
  if ! read -r status hundredths < "$dir/$1.status"; then
    echo "$1 ended in the background, but its status could not be read"
    return 1
  fi
  printf '%s took %d.%02d s in the background\n' "$1" "$((hundredths / 100))" "$((hundredths % 100))"
  if [ "$status" -eq 0 ] && [ "$(sed 's/.* //' "$dir/steps")" = "$1" ]; then rm -rf "$dir"; fi
  return "$status"
}

# The pids of every process below process $1 (Linux /proc), children before grandchildren.
shipit_descendants() {
  # A pid, its state and its parent's pid, per process (the name in parentheses removed).
  cat /proc/[0-9]*/stat 2>/dev/null | sed 's/ (.*) / /' | awk -v root="$1" '
    { parent[$1] = $3 }
    END {
      n = split(root, queue, " ")
      for (i = 1; i <= n; i++)
        for (p in parent)
          if (parent[p] == queue[i]) { queue[++n] = p; printf "%s ", p }
    }'
}

# Ends the background job of a failed or cut-off prepare and whatever it started, waits (up to
# 5 s, then SIGKILL) until they are gone, so that nothing of it writes into the release after
# the cleanup, and removes its directory. The job is stopped first, so it cannot start a
# process while its tree is read.
shipit_stop_background() {
  shipit_stop_deferred
  dir=$(shipit_background_dir)
  [ -d "$dir" ] || return 0
  if [ ! -f "$dir/done" ] && pid=$(shipit_background_pid); then
    kill -STOP "$pid" 2>/dev/null || true
    tree=$(shipit_descendants "$pid")
    # Word splitting of the pid lists is wanted.
    # shellcheck disable=SC2086
    {
      kill -STOP $tree 2>/dev/null || true
      tree="$pid $tree $(shipit_descendants "$pid")"
      kill -TERM $tree 2>/dev/null || true
      kill -CONT $tree 2>/dev/null || true
      tries=0
      while [ "$tries" -lt 50 ]; do
        alive=
        # A zombie is gone (kill -0 would still find it until it is reaped).
        for p in $tree; do [ -n "$(shipit_starttime "$p")" ] && alive=$p; done
        [ -n "$alive" ] || break
        sleep 0.1
        tries=$((tries + 1))
      done
      [ -z "$alive" ] || kill -KILL $tree 2>/dev/null || true
    }
    echo "stopped the background steps: $(cat "$dir/steps" 2>/dev/null)"
  fi
  rm -rf "$dir"
}
