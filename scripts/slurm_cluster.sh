#!/usr/bin/env bash
# A one-node Slurm cluster on loopback for tests: munged, slurmctld and slurmd, every file under
# DIR (config, state, spool, logs, the munge key and socket), ports chosen free, nothing in /etc.
#   scripts/slurm_cluster.sh start DIR   -> prints SLURM_CONF=DIR/slurm.conf once the node is idle
#   scripts/slurm_cluster.sh stop DIR    -> stops the daemons started by `start DIR`
# Needs root (slurmd runs jobs as their user) and Debian's slurm-wlm and munge
# (scripts/install_deps.sh). Bounded: start gives up after 30 s.
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?DIR}")

stop() {
  for d in slurmd slurmctld munged; do
    [ -f "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
  done
  for d in slurmd slurmctld munged; do  # wait (at most 5 s) so the ports and files are free
    for _ in $(seq 50); do
      [ -f "$dir/$d.pid" ] && kill -0 "$(cat "$dir/$d.pid")" 2>/dev/null || break
      sleep 0.1
    done
    [ -f "$dir/$d.pid" ] && kill -9 "$(cat "$dir/$d.pid")" 2>/dev/null || true
    rm -f "$dir/$d.pid"
  done
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "slurm_cluster.sh: needs root" >&2; exit 2; }
mkdir -p "$dir"/{state,spool,log,tmp}
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ctl_port=$(free_port); d_port=$(free_port)
while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
head -c 1024 /dev/urandom > "$dir/munge.key"
chmod 600 "$dir/munge.key"
munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed"
host=$(hostname -s)
cpus=$(getconf _NPROCESSORS_ONLN)  # not nproc: it honours OMP_NUM_THREADS
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
first_job=$(( (RANDOM % 30000) * 1000 + 1 ))
cat > "$dir/slurm.conf" <<CONF
ClusterName=exptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
# PMIx keeps per-step folders under TmpFS named by job and step id; a cancelled step leaves its
# folder behind, and the next cluster's job 1 would find it taken. Ours, and ids that differ.
TmpFS=$dir/tmp
FirstJobId=$first_job
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5
JobRequeue=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" -i 2> "$dir/log/slurmctld.err"
slurmd -f "$SLURM_CONF" -N "$host" 2> "$dir/log/slurmd.err"
for _ in $(seq 300); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then echo "SLURM_CONF=$SLURM_CONF"; exit 0; fi
  sleep 0.1
done
echo "slurm_cluster.sh: the node did not come up in 30 s; logs in $dir/log" >&2
tail -5 "$dir"/log/*.log >&2 || true
stop
exit 1
