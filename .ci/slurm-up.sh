#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine for the CI's cluster checks: munged,
# slurmctld and slurmd with a generated slurm.conf under $1 (default /tmp/descent-slurm).
# Installs Slurm and munge from the distribution's packages when they are missing.
# Prints the environment to source (SLURM_CONF) on its last line. Stop with slurm-down.sh.
set -euo pipefail

# has ARGS…: grep -q ARGS over the whole of stdin. Read it all first: under pipefail, grep -q
# quits at its first match and a writer still writing dies of SIGPIPE, failing the pipeline.
has() { local text; text=$(cat); grep -q "$@" <<<"$text"; }

base=${1:-/tmp/descent-slurm}
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
mkdir -p "$base"/{state,spool,log,munge,run}
chmod 700 "$base/munge"
if [ ! -f "$base/munge/munge.key" ]; then
  head -c 1024 /dev/urandom > "$base/munge/munge.key"
  chmod 400 "$base/munge/munge.key"
fi
munged --force --key-file="$base/munge/munge.key" --socket="$base/munge/munge.socket" \
  --pid-file="$base/munge/munged.pid" --log-file="$base/log/munged.log" \
  --seed-file="$base/munge/munge.seed"
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$base/slurm.conf" <<CONF
ClusterName=descent-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$base/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$base/state
SlurmdSpoolDir=$base/spool
SlurmctldPidFile=$base/run/slurmctld.pid
SlurmdPidFile=$base/run/slurmd.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=30
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$base/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  if sinfo -h -o '%T' 2>/dev/null | has -E '^(idle|mixed|allocated)'; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "slurm did not come up; logs:" >&2
tail -20 "$base/log/slurmctld.log" "$base/log/slurmd.log" >&2 || true
exit 1
