#!/usr/bin/env bash
# Several real Slurm clusters on this host sharing one munged and one slurmdbd (Slurm's
# multi-cluster mode), so `sbatch -M alpha,beta`, `squeue -M all` and `sacct -M beta` work.
# Built on scripts/slurm-up.sh: the first cluster starts the private munged, MariaDB and slurmdbd
# as usual (ACCT=1); every other one is started with SHARED_FROM=<first cluster's dir>, so its
# slurmctld, slurmd(s) and slurm.conf are its own but its munge socket and slurmdbd are the first's.
#
# Usage: scripts/slurm-multi-up.sh WORKDIR NNODES NAME [NAME...]      e.g. /tmp/mc 2 alpha beta
#   WORKDIR/NAME/          each cluster's own slurm.conf, state, spool, logs and PID files
#   WORKDIR/slurm.conf     a client config (a copy of the first cluster's: plain `sbatch` goes
#                          there; `-M NAME` is resolved through slurmdbd)
#   WORKDIR/clusters       the names, in start order (scripts/slurm-down.sh WORKDIR reads it)
# Environment: SLURMDBD_PORT=16819, MARIADB_PORT=13306, CPUS_PER_NODE=2, and per cluster
#   NAME_PORTS="SLURMCTLD SLURMD NODE_PORT_BASE" (default for the k-th, from 0: 16817+100k,
#   16818+100k, 17000+100k).
#
# What was found doing it (Slurm 22.05.8, Debian 12):
# - No `sacctmgr add cluster` is needed: a slurmctld whose ClusterName is not in the database yet
#   registers it when it first connects (its log: "Registering slurmctld at port P with slurmdbd";
#   `sacctmgr list cluster` then shows its ControlHost 127.0.0.1 and ControlPort). slurmdbd logs
#   "update cluster: Connection refused to NAME" while that slurmctld is still starting: harmless.
# - A client resolves `-M NAME` by asking slurmdbd for the cluster's ControlHost/Port, so any
#   slurm.conf whose AccountingStorageHost/Port (and AccountingStoragePass = the munge socket)
#   point at the slurmdbd works as a client config for every cluster.
# - Each cluster needs its own SlurmctldPort, SlurmdPort / node Ports, StateSaveLocation and
#   SlurmdSpoolDir; node names may repeat across clusters (node1 in alpha and in beta).
# - `sbatch -M a,b` asks every cluster for a will-run answer and submits to the earliest start.
#   With --test-only it prints only the chosen cluster's answer, without naming the cluster;
#   `-vv` adds one debug line per cluster: "Job N to start at T on cluster C using P processors
#   on nodes X in partition Q" (tests/fixtures/slurm/sbatch_test_only/).
# - Job ids are per cluster (both start at 1); `--parsable -M b` prints "JOBID;CLUSTER".
# - The job comment reaches accounting only with AccountingStoreFlags=job_comment (slurm-up.sh
#   sets it whenever ACCT=1).
set -euo pipefail
D=$(realpath -m "${1:?usage: slurm-multi-up.sh WORKDIR NNODES NAME [NAME...]}")
NN=${2:?usage: slurm-multi-up.sh WORKDIR NNODES NAME [NAME...]}
shift 2
[ $# -ge 1 ] || { echo "slurm-multi-up.sh: name at least one cluster" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$D"; chmod 0755 "$D"
: > "$D/clusters"
first=""; k=0
for name in "$@"; do
  [[ "$name" =~ ^[a-z][a-z0-9_]*$ ]] || { echo "slurm-multi-up.sh: bad cluster name $name" >&2; exit 1; }
  var="${name}_PORTS"
  read -r ctld slurmd nodes <<<"${!var:-$((16817 + 100 * k)) $((16818 + 100 * k)) $((17000 + 100 * k))}"
  echo "$name" >> "$D/clusters"      # before starting: slurm-down.sh stops a half-started one too
  SLURMCTLD_PORT=$ctld SLURMD_PORT=$slurmd NODE_PORT_BASE=$nodes CLUSTER_NAME=$name \
    SHARED_FROM=${first:+$D/$first} "$HERE/slurm-up.sh" "$D/$name" "$NN" 1 0
  [ -n "$first" ] || first=$name
  k=$((k + 1))
done
cp "$D/$first/slurm.conf" "$D/slurm.conf"
export SLURM_CONF="$D/slurm.conf"
timeout 10 sacctmgr -n -P list cluster format=cluster,controlhost,controlport
