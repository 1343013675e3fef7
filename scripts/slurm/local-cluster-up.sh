#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, to try profiles/slurm without a cluster
# (tests/test_slurm_cluster.py runs the workflow on it; .ci/run calls this script first).
#
#   sudo scripts/slurm/local-cluster-up.sh     # as root, on Debian/Ubuntu; idempotent
#   export SBATCH_PARTITION=local SBATCH_ACCOUNT=
#   snakemake --profile profiles/slurm --slurm-status-command squeue --configfile presets/demo.yaml
#   sudo scripts/slurm/local-cluster-down.sh   # stops the daemons again
#
# What it does, each step skipped when already done:
# - installs Debian's slurmctld, slurmd, slurm-client and munge (SLURM 22.05 on bookworm);
# - makes a munge key if there is none and starts munged;
# - writes /etc/slurm/slurm.conf and gres.conf (marked as written here; a slurm.conf written by
#   anyone else is left alone and the script stops) for one node, this host: its cores,
#   RealMemory at least 32768 MB (the profile asks up to 32000 MB per job) but not enforced
#   (memory is no consumable resource here, no cgroups), two placeholder GPUs (character
#   devices like /dev/null under $STATE/dev, so jobs can ask for gres/gpu where there is no GPU),
#   no accounting (no slurmdbd: `sacct` answers "accounting storage is disabled", so Snakemake
#   must poll with `--slurm-status-command squeue`) and MinJobAge=600 s, so finished jobs stay
#   visible to squeue and `scontrol show job` for ten minutes;
# - starts slurmctld and slurmd (restarted when the configuration changed) and waits until the
#   node is idle. Partition `local`, the default.
#
# Settings (environment): CIPRIVACY_SLURM_GPUS (placeholder GPUs, 2), CIPRIVACY_SLURM_MEMORY_MB
# (the node's declared memory), CIPRIVACY_SLURM_STATE (its state, logs, pid files and device
# files; /var/lib/ciprivacy-slurm). Where systemd runs, the packages also enable their services,
# which start the daemons with this configuration at the next boot.
#
# Exit status: 0 the cluster is up; 2 not root; 3 the packages cannot be installed (apt cannot
# reach them); 4 a SLURM configuration of someone else's is there; 1 anything else (see the
# logs under $STATE/log).
set -euo pipefail

STATE=${CIPRIVACY_SLURM_STATE:-/var/lib/ciprivacy-slurm}
MARK="# written by ciprivacy scripts/slurm/local-cluster-up.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)
MEMORY_MB=${CIPRIVACY_SLURM_MEMORY_MB:-}
GPUS=${CIPRIVACY_SLURM_GPUS:-2}

say() { echo "local-cluster-up: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    say "needs root (it installs packages and starts the SLURM daemons): sudo $0"
    exit 2
fi

# --- packages -----------------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        say "no apt-get here: install ${missing[*]} with this system's package manager, then rerun"
        exit 3
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"/tmp/local-cluster-apt.log" 2>&1; then
        apt-get update -q >>"/tmp/local-cluster-apt.log" 2>&1 || true
        if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >>"/tmp/local-cluster-apt.log" 2>&1; then
            tail -5 /tmp/local-cluster-apt.log >&2
            say "apt-get could not install ${missing[*]} (log: /tmp/local-cluster-apt.log)."
            say "Install them from a mirror that this machine reaches, then rerun this script."
            exit 3
        fi
    fi
fi

# --- configuration ------------------------------------------------------------------------------
if [ -e /etc/slurm/slurm.conf ] && ! grep -qxF "$MARK" /etc/slurm/slurm.conf; then
    say "/etc/slurm/slurm.conf exists and was not written by this script: this machine is set up"
    say "for another SLURM cluster already. Left alone; use that cluster, or move the file away."
    exit 4
fi
mkdir -p "$STATE"/{ctld,spool,log,run,dev} /etc/slurm
host=$(hostname -s)
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc would count OpenMP's limit, not the cores
real_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
[ -n "$MEMORY_MB" ] || MEMORY_MB=$((real_mb > 32768 ? real_mb : 32768))
# Placeholder GPUs: character devices with /dev/null's numbers (1, 3), which slurmd accepts as
# GPU files; jobs see CUDA_VISIBLE_DEVICES set, and no GPU.
for ((i = 0; i < GPUS; i++)); do
    [ -c "$STATE/dev/gpu$i" ] || mknod -m 666 "$STATE/dev/gpu$i" c 1 3
done

new_conf=$(mktemp)
cat >"$new_conf" <<EOF
$MARK
# One node, this host; see the script's header. Edit the script, not this file.
ClusterName=ciprivacy-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no accounting daemon: runs in containers and on laptops as they are.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Finished jobs stay in slurmctld (squeue, scontrol show job) this long: Snakemake's squeue
# status polling needs it well above its polling interval (at most 180 s).
MinJobAge=600
ReturnToService=2
JobRequeue=1
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
# The declared RealMemory is more than the machine may have (the profile's requests must fit);
# config_overrides keeps slurmd from draining the node for that.
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$MEMORY_MB Gres=gpu:$GPUS State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
new_gres=$(mktemp)
cat >"$new_gres" <<EOF
$MARK
NodeName=$host Name=gpu File=$STATE/dev/gpu[0-$((GPUS - 1))]
EOF
changed=0
cmp -s "$new_conf" /etc/slurm/slurm.conf || changed=1
cmp -s "$new_gres" /etc/slurm/gres.conf || changed=1
install -m 644 "$new_conf" /etc/slurm/slurm.conf
install -m 644 "$new_gres" /etc/slurm/gres.conf
rm -f "$new_conf" "$new_gres"

# --- daemons ------------------------------------------------------------------------------------
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ ! -s /etc/munge/munge.key ]; then
    say "creating a munge key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    mkdir -p /run/munge
    chown munge:munge /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    # A copy of munged's pid file says that this script started it: the down script stops only
    # what this script started.
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$STATE/run/munged.pid"
fi

if [ "$changed" = 1 ]; then
    for daemon in slurmd slurmctld; do
        if alive "$STATE/run/$daemon.pid"; then
            say "configuration changed: stopping $daemon"
            kill "$(cat "$STATE/run/$daemon.pid")"
            for _ in $(seq 100); do alive "$STATE/run/$daemon.pid" || break; sleep 0.1; done
        fi
    done
fi
for daemon in slurmctld slurmd; do
    alive "$STATE/run/$daemon.pid" && continue
    say "starting $daemon"
    "/usr/sbin/$daemon"
    sleep 1
    if ! alive "$STATE/run/$daemon.pid"; then
        tail -5 "$STATE/log/$daemon.log" >&2
        say "$daemon did not stay up; its log: $STATE/log/$daemon.log"
        exit 1
    fi
done

# --- ready --------------------------------------------------------------------------------------
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case "$state" in
        idle* | mixed* | allocated*) break ;;
        down* | drain*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle* | mixed* | allocated*) ;;
    *)
        say "node $host is '${state:-not reported}' after 60 s; logs: $STATE/log"
        exit 1
        ;;
esac
say "up: node $host, $cpus CPUs, ${MEMORY_MB} MB (not enforced), $GPUS placeholder GPUs, partition 'local'"
