# shellcheck shell=sh
# The process manager seam. A manager NAME is a family of functions pm_NAME_VERB in pm/NAME.sh;
# steps call `shipit_pm VERB` for the manager this host runs (MANAGER) or `shipit_pms VERB`
# for every manager shipit knows (MANAGERS, in the order `auto` tries them: a target moved
# from one manager to another leaves the old one's programs to stop), and never branch on
# which manager it is. Adding a manager is a pm/NAME.sh with these verbs (docs/src/managers.md):
#
#   here                 whether this host runs the manager (`auto` takes the first that does)
#   init                 the names it needs for this release (every manager, before any step)
#   require              its control command is on the deploy user's PATH (shipit_require_command)
#   start                install and start the release's app server and processes; no waiting
#   seen                 the web app server's pid as first seen, or nothing
#   dead                 why the web app server is not running; fails while it runs
#   status               the web app server's status, for an error
#   log                  the web app server's last lines (through `shipit_server log`)
#   wait                 wait until the release's other processes run (by DEADLINE)
#   stop_new             stop this run's new release (a failed prepare or switch)
#   stop_old             after the switch: stop other releases', start the live one's
#                        singletons (every manager; LIVE is the release `current` points at)
#   reap [wait]          what earlier runs left stopping (every manager)
#   installed            releases whose processes are installed, one a line
#   draining             releases whose processes still stop, one a line (every manager)
#   check                `shipit check`'s `app` item (shipit_check app ok|fail DETAIL)
#   logs PROCESS LINES FOLLOW ERE   `shipit logs`

# shipit_pm VERB ARG...: VERB of the manager this host runs.
shipit_pm() {
  SHIPIT_PM_VERB=$1
  shift
  "pm_${MANAGER}_$SHIPIT_PM_VERB" "$@"
}

# shipit_pms VERB ARG...: VERB of every manager, in order.
shipit_pms() {
  SHIPIT_PMS_VERB=$1
  shift
  # MANAGERS comes from the preamble (not a misspelt MANAGER).
  # shellcheck disable=SC2153
  for pm in $MANAGERS; do "pm_${pm}_$SHIPIT_PMS_VERB" "$@"; done
}

# Resolves MANAGER=auto for this host, then lets every manager name what it needs.
shipit_pm_init() {
  if [ "$MANAGER" = auto ]; then
    for pm in $MANAGERS; do
      if "pm_${pm}_here"; then MANAGER=$pm; break; fi
    done
  fi
  shipit_pms init
}
