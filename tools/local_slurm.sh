#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests and for trying the slurm executor.
#
#   tools/local_slurm.sh start [DIR]    # writes DIR/slurm.conf, starts munged, slurmctld,
#                                       # slurmd; waits until the node is idle
#   tools/local_slurm.sh status [DIR]   # the daemons' pids and `sinfo`
#   tools/local_slurm.sh stop [DIR]     # cancels its jobs, stops exactly the daemons
#                                       # `start` started (by their pid files)
#   tools/local_slurm.sh install        # apt-get installs the Debian packages if missing
#
# DIR defaults to $NOISEJAX_SLURM_DIR, else /tmp/noisejax-slurm. Everything lives in DIR:
# config, state and spool dirs, pid files, logs, munge's socket (and its key when
# /etc/munge/munge.key is missing). The daemons listen on free loopback ports. Clients
# (sbatch, squeue, scontrol, submitit) find this cluster through SLURM_CONF:
#
#   eval "$(tools/local_slurm.sh start /tmp/slurm)"    # start prints `export SLURM_CONF=...`
#
# Needs Debian's packages slurmctld slurmd slurm-client munge, and root (SlurmUser=root).
# Accounting has no slurmdbd: finished jobs are appended to DIR/jobcomp.txt
# (JobCompType=jobcomp/filetxt), and `scontrol show job` shows them for MinJobAge.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status [DIR] | install" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
command=$1
dir=${2:-${NOISEJAX_SLURM_DIR:-/tmp/noisejax-slurm}}
wait_seconds=${NOISEJAX_SLURM_TIMEOUT:-60}
daemons=(slurmd slurmctld munged)
programs=(munged slurmctld slurmd sbatch squeue scontrol sinfo)

die() { echo "local_slurm: $*" >&2; exit 1; }

pid_of() {  # the pid in DIR/<daemon>.pid if that process is alive and is that daemon
  local name=$1 file="$dir/$1.pid" pid
  [[ -s $file ]] || return 1
  pid=$(tr -dc '0-9' < "$file")
  [[ -n $pid && -r /proc/$pid/comm ]] || return 1
  [[ $(cat "/proc/$pid/comm") == "$name"* ]] || return 1
  echo "$pid"
}

free_ports() {  # two free TCP ports on the loopback interface
  python3 - <<'EOF'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
  s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
}

write_config() {
  local host ctld_port slurmd_port memory_mb
  host=$(hostname -s)
  read -r ctld_port slurmd_port < <(free_ports)
  memory_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool"
  cat > "$dir/slurm.conf" <<EOF
# Written by tools/local_slurm.sh: a one-node cluster in $dir.
ClusterName=noisejax
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
# A job being killed (scancel, requeue) gets SIGKILL right after SIGTERM, which submitit
# ignores; a preempted or timed-out job is warned earlier by SIGUSR2 (sbatch --signal).
KillWait=0
MinJobAge=3600
# Job ids from a random start: JAX derives a multi-task job's coordinator port from its
# id, so two local clusters on one machine would otherwise collide at job 1.
FirstJobId=$((RANDOM % 30000 + 1000))
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
  local key=/etc/munge/munge.key
  if [[ ! -r $key ]]; then
    key=$dir/munge.key
    [[ -s $key ]] || mungekey --create --keyfile="$key" 2>/dev/null \
      || dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
    chmod 400 "$key"
  fi
  munged --force --key-file="$key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" \
    || die "munged did not start; see $dir/munged.log"
}

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n 1; }

install() {
  local tool missing=0
  for tool in "${programs[@]}"; do command -v "$tool" > /dev/null || missing=1; done
  (( missing )) || return 0
  command -v apt-get > /dev/null || die "no SLURM here and no apt-get to install it"
  apt-get update -q > /dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge > /dev/null
}

start() {
  local tool
  for tool in "${programs[@]}"; do
    command -v "$tool" > /dev/null || die "no SLURM here: $tool is missing (apt-get install slurmctld slurmd slurm-client munge, or $0 install)"
  done
  [[ $(id -u) == 0 ]] || die "needs root (SlurmUser=root)"
  if pid_of slurmctld > /dev/null; then
    echo "export SLURM_CONF=$dir/slurm.conf"
    return 0
  fi
  mkdir -p "$dir"
  chmod 700 "$dir"
  write_config
  export SLURM_CONF=$dir/slurm.conf
  pid_of munged > /dev/null || start_munged
  slurmctld -f "$SLURM_CONF" -c || { stop > /dev/null; die "slurmctld did not start; see $dir/slurmctld.log"; }
  slurmd -f "$SLURM_CONF" || { stop > /dev/null; die "slurmd did not start; see $dir/slurmd.log"; }
  local waited=0 state
  while state=$(node_state); [[ $state != idle* ]]; do
    if (( waited >= wait_seconds * 5 )); then
      stop > /dev/null
      die "node not idle after ${wait_seconds}s (state: '${state:-none}'); see $dir/slurmctld.log, $dir/slurmd.log"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "export SLURM_CONF=$dir/slurm.conf"
}

cancel_jobs() {  # cancels this cluster's jobs and waits (<= 20 s) until their processes end
  local jobs waited=0
  pid_of slurmctld > /dev/null || return 0
  export SLURM_CONF=$dir/slurm.conf
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u) || return 0
  [[ -n $jobs ]] || return 0
  scancel $jobs 2>/dev/null || true
  while [[ -n $(squeue -h -o %A 2>/dev/null) ]] && (( waited < 100 )); do
    sleep 0.2
    waited=$((waited + 1))
  done
}

stop() {  # the jobs first, then SIGTERM to the daemons at once (each takes ~2 s to exit)
  local name pid tries
  local -A pids=()
  cancel_jobs
  for name in "${daemons[@]}"; do
    pid=$(pid_of "$name") || continue
    kill -TERM "$pid" 2>/dev/null && pids[$name]=$pid
  done
  for name in "${!pids[@]}"; do
    pid=${pids[$name]}
    for tries in $(seq 100); do
      [[ -e /proc/$pid ]] || break
      sleep 0.1
    done
    if [[ -e /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "stopped $name ($pid)"
  done
  rm -f "$dir"/{slurmd,slurmctld,munged}.pid
}

status() {
  local name pid running=0
  for name in munged slurmctld slurmd; do
    if pid=$(pid_of "$name"); then
      echo "$name: running ($pid)"
      running=$((running + 1))
    else
      echo "$name: not running"
    fi
  done
  if (( running == 3 )); then
    SLURM_CONF=$dir/slurm.conf sinfo
  fi
  (( running == 3 ))
}

case $command in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
