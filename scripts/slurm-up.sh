#!/usr/bin/env bash
# A real single-host Slurm cluster in WORKDIR, from Debian packages (slurm-wlm 22.05), no systemd.
# Adapted from shared/SERVICES.md §4. Used by the Slurm integration test; handy by hand too.
#
# Usage: scripts/slurm-up.sh WORKDIR [NNODES=1] [ACCT=0|1] [RESTD=0|1]
#   NNODES>1 emulates several nodes on this host (one slurmd per node, distinct ports).
#   ACCT=1   MariaDB in WORKDIR/db + slurmdbd (sacct works).  RESTD=1  slurmrestd with JWT auth.
# Needs root and: slurmctld slurmd slurm-client munge [slurmdbd mariadb-server slurmrestd
#   slurm-wlm-jwt-plugin]. Do NOT install slurm-wlm-emulator (see SERVICES.md §4).
# Environment (all optional): CPUS_PER_NODE=2, SLURMCTLD_PORT=16817, SLURMD_PORT=16818 (one node),
#   NODE_PORT_BASE=17000 (node i listens on base+i), SLURMDBD_PORT=16819, SLURMRESTD_PORT=16820,
#   MARIADB_PORT=13306, CLUSTER_NAME=twin.
#   SHARED_FROM=DIR (needs ACCT=1): use the munged and slurmdbd that an earlier slurm-up.sh started
#   in DIR instead of starting our own, so several clusters share one accounting database
#   (scripts/slurm-multi-up.sh; the cluster registers itself there when its slurmctld starts).
#   GPUS_PER_NODE=N [GPU_TYPE=h100]: each node gets N GPU GRES (gres.conf File= on character
#   devices made in WORKDIR/dev, major 195 as nvidia's), so jobs get real `gres_detail` IDX lists.
# Everything runs from WORKDIR, including a private munged (own key and socket), so nothing
# outside WORKDIR is touched and scripts/slurm-down.sh stops it all by PID.
# Afterwards: export SLURM_CONF=WORKDIR/slurm.conf; slurmrestd (if any) is on 127.0.0.1:$SLURMRESTD_PORT.
set -euo pipefail
D=$(realpath -m "${1:?usage: slurm-up.sh WORKDIR [NNODES] [ACCT] [RESTD]}")
NN=${2:-1}; ACCT=${3:-0}; RESTD=${4:-0}
CPN=${CPUS_PER_NODE:-2}
CTLD_PORT=${SLURMCTLD_PORT:-16817}; SLURMD_PORT=${SLURMD_PORT:-16818}; NODE_PORT_BASE=${NODE_PORT_BASE:-17000}
DBD_PORT=${SLURMDBD_PORT:-16819}; RESTD_PORT=${SLURMRESTD_PORT:-16820}; DB_PORT=${MARIADB_PORT:-13306}
CLUSTER=${CLUSTER_NAME:-twin}; SHARED=${SHARED_FROM:+$(realpath -m "$SHARED_FROM")}
HOST=$(hostname -s)
[ -z "$SHARED" ] || [ "$ACCT" = 1 ] || { echo "slurm-up.sh: SHARED_FROM needs ACCT=1" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "slurm-up.sh: needs root" >&2; exit 1; }
trap 'echo "slurm-up.sh: failed at line $LINENO; last log lines:" >&2; tail -n 3 "$D"/log/*.log "$D"/munge/munged.log >&2 2>/dev/null' ERR

mkdir -p "$D"/{state,spool,log,run}
chmod 0755 "$D"            # munge and nobody (slurmrestd) must reach files in here
export SLURM_CONF="$D/slurm.conf"

wait_for() {  # wait_for TRIES CMD...: retry every 0.2 s
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# --- a private munged: own key, socket, pid and log under $D/munge (or SHARED_FROM's) ----------
M="${SHARED:-$D}/munge"
if [ -n "$SHARED" ]; then
  [ -S "$M/munge.socket" ] || { echo "slurm-up.sh: no munged in $SHARED (start it there first)" >&2; exit 1; }
else
  install -d -o munge -g munge -m 0755 "$M"
  runuser -u munge -- test -x "$M" \
    || { echo "slurm-up.sh: user munge cannot reach $M; every parent directory needs o+x" >&2; exit 1; }
  [ -s "$M/munge.key" ] || mungekey --create --keyfile="$M/munge.key"
  chown munge:munge "$M/munge.key"; chmod 0400 "$M/munge.key"
  if ! munge -n -S "$M/munge.socket" 2>/dev/null | unmunge -S "$M/munge.socket" >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --socket="$M/munge.socket" --key-file="$M/munge.key" \
      --pid-file="$M/munged.pid" --log-file="$M/munged.log" --seed-file="$M/munged.seed"
  fi
  wait_for 50 bash -c "munge -n -S '$M/munge.socket' | unmunge -S '$M/munge.socket'" \
    || { echo "munged did not start:"; tail -5 "$M/munged.log"; exit 1; }
fi
AUTH_INFO="AuthInfo=socket=$M/munge.socket"

# --- JWT key for slurmrestd ------------------------------------------------------------------
JWT_LINES=""
if [ "$RESTD" = 1 ]; then
  [ -s "$D/jwt_hs256.key" ] || dd if=/dev/urandom of="$D/jwt_hs256.key" bs=32 count=1 status=none
  chmod 0600 "$D/jwt_hs256.key"
  JWT_LINES="AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$D/jwt_hs256.key"
fi

# --- optional accounting: MariaDB in $D/db + slurmdbd ----------------------------------------
ACCT_LINES="JobAcctGatherType=jobacct_gather/none"
if [ "$ACCT" = 1 ] && [ -n "$SHARED" ]; then
  DBD_PORT=$(sed -n 's/^DbdPort=//p' "$SHARED/slurmdbd.conf")
  [ -n "$DBD_PORT" ] || { echo "slurm-up.sh: no slurmdbd.conf in $SHARED" >&2; exit 1; }
elif [ "$ACCT" = 1 ]; then
  if [ ! -d "$D/db/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$D/db" --user=root --skip-test-db \
      >"$D/log/mariadb-install.log" 2>&1
  fi
  mariadbd --no-defaults --datadir="$D/db" --socket="$D/run/mysqld.sock" --pid-file="$D/run/mysqld.pid" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --user=root --skip-name-resolve \
    --innodb-buffer-pool-size=64M --log-error="$D/log/mariadb.err" >/dev/null 2>&1 &
  wait_for 150 mariadb --socket="$D/run/mysqld.sock" -e 'select 1' \
    || { echo "mariadbd did not start:"; tail -5 "$D/log/mariadb.err"; exit 1; }
  mariadb --socket="$D/run/mysqld.sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  cat > "$D/slurmdbd.conf" <<CONF
AuthType=auth/munge
$AUTH_INFO
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
$JWT_LINES
CONF
  chmod 600 "$D/slurmdbd.conf"
  slurmdbd          # reads slurmdbd.conf next to $SLURM_CONF; daemonizes
  wait_for 150 bash -c "exec 3<>/dev/tcp/127.0.0.1/$DBD_PORT" \
    || { echo "slurmdbd did not start:"; tail -5 "$D/log/slurmdbd.log"; exit 1; }
fi
if [ "$ACCT" = 1 ]; then
  # AccountingStoragePass names the munge socket for connections to slurmdbd (AuthInfo does not apply)
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStoragePass=$M/munge.socket
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5"
fi

# --- slurm.conf ------------------------------------------------------------------------------
if [ "$NN" -gt 1 ]; then
  NODES=""
  for i in $(seq 1 "$NN"); do
    NODES+="NodeName=node$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((NODE_PORT_BASE + i)) CPUs=$CPN RealMemory=1000 State=UNKNOWN"$'\n'
  done
  NODELIST="node[1-$NN]"
else
  NODES="NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPN RealMemory=1000 State=UNKNOWN"; NODELIST=ALL
fi
GRES_LINES=""
if [ "${GPUS_PER_NODE:-0}" -gt 0 ]; then
  mkdir -p "$D/dev"
  for g in $(seq 0 $((GPUS_PER_NODE - 1))); do [ -e "$D/dev/nvidia$g" ] || mknod "$D/dev/nvidia$g" c 195 "$g"; done
  echo "Name=gpu${GPU_TYPE:+ Type=$GPU_TYPE} File=$D/dev/nvidia[0-$((GPUS_PER_NODE - 1))]" > "$D/gres.conf"
  GRES_LINES="GresTypes=gpu"
  NODES=$(sed "s/ State=UNKNOWN/ Gres=gpu:${GPU_TYPE:+$GPU_TYPE:}$GPUS_PER_NODE State=UNKNOWN/" <<<"$NODES")
fi
cat > "$SLURM_CONF" <<CONF
$GRES_LINES
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
$AUTH_INFO
$JWT_LINES
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCT_LINES
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
MailProg=/bin/true
ReturnToService=2
MpiDefault=none
MinJobAge=600
$NODES
PartitionName=debug Nodes=$NODELIST Default=YES DefaultTime=00:05:00 MaxTime=01:00:00 State=UP
CONF

slurmctld
if [ "$NN" -gt 1 ]; then
  for i in $(seq 1 "$NN"); do mkdir -p "$D/spool/node$i"; slurmd -N "node$i"; done
else
  mkdir -p "$D/spool/$HOST"; slurmd
fi
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
up=0
for _ in $(seq 150); do
  if ! pid_alive "$D/run/slurmctld.pid"; then
    sleep 0.5
    pid_alive "$D/run/slurmctld.pid" || { echo "slurmctld not running:"; tail -5 "$D/log/slurmctld.log"; exit 1; }
  fi
  idle=$(timeout 5 sinfo -h -o '%T %D' 2>/dev/null | awk '$1=="idle"{s+=$2} END{print s+0}')
  [ "$idle" = "$NN" ] && { up=1; break; }
  sleep 0.2
done
[ "$up" = 1 ] || { echo "nodes not idle after 30 s:"; timeout 5 sinfo || true; exit 1; }

if [ "$RESTD" = 1 ]; then
  # slurmrestd refuses root: run as nobody. SLURM_JWT=daemon makes it use auth/jwt towards
  # slurmctld and slurmdbd (without it every request is a 401).
  SLURM_JWT=daemon setsid slurmrestd -u nobody -g nogroup -a rest_auth/jwt "127.0.0.1:$RESTD_PORT" \
    >"$D/log/slurmrestd.log" 2>&1 < /dev/null &
  echo $! > "$D/run/slurmrestd.pid"
  wait_for 100 bash -c "exec 3<>/dev/tcp/127.0.0.1/$RESTD_PORT" \
    || { echo "slurmrestd did not start:"; tail -5 "$D/log/slurmrestd.log"; exit 1; }
fi
timeout 5 sinfo
