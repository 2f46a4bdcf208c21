#!/usr/bin/env bash
# Stop what scripts/slurm-up.sh started in WORKDIR, by the PIDs it recorded: cancel the jobs, then
# slurmrestd, the slurmd(s), slurmctld, slurmdbd, mariadbd and the private munged. Idempotent.
# Usage: scripts/slurm-down.sh WORKDIR
# A WORKDIR of scripts/slurm-multi-up.sh (it has a `clusters` file): each cluster in reverse start
# order, so the first one, which runs the shared munged, slurmdbd and MariaDB, goes last.
set -uo pipefail
D=$(realpath -m "${1:?usage: slurm-down.sh WORKDIR}")
[ -d "$D" ] || exit 0
if [ -s "$D/clusters" ]; then
  mapfile -t names < "$D/clusters"
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do "$0" "$D/${names[i]}"; done
  exit 0
fi
export SLURM_CONF="$D/slurm.conf"

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Jobs first, while slurmctld can still signal their slurmstepd (those are not ours to kill by PID).
if alive "$D/run/slurmctld.pid"; then
  jobs=$(timeout 5 squeue -h -t PD,R,CG,S -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    # shellcheck disable=SC2086
    timeout 5 scancel $jobs 2>/dev/null
    for _ in $(seq 50); do
      [ -z "$(timeout 5 squeue -h -t PD,R,CG,S -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

stop() {  # stop PIDFILE...: TERM them all at once, wait up to 10 s, then KILL the rest
  local f pid pids=()
  for f in "$@"; do
    [ -s "$f" ] || continue
    pid=$(cat "$f"); rm -f "$f"
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for _ in $(seq 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
  return 0
}

# Slurm daemons together, then slurmdbd (it may still write to MariaDB), then MariaDB and munged.
stop "$D/run/slurmrestd.pid" "$D"/run/slurmd-*.pid "$D/run/slurmctld.pid"
stop "$D/run/slurmdbd.pid"
stop "$D/run/mysqld.pid" "$D/munge/munged.pid"
exit 0
