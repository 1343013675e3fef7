#!/usr/bin/env bash
# Stops the single-node SLURM cluster that local-cluster-up.sh started: slurmd, slurmctld, and
# munged if that script started it. Queued and running jobs end with it. Idempotent.
#
#   sudo scripts/slurm/local-cluster-down.sh           # stop the daemons (rerun -up to restart)
#   sudo scripts/slurm/local-cluster-down.sh --purge   # also remove its slurm.conf, gres.conf and state
#
# The packages stay installed. Processes it did not start (by the pid files under $STATE/run) are
# left alone.
set -euo pipefail

STATE=${CIPRIVACY_SLURM_STATE:-/var/lib/ciprivacy-slurm}
MARK="# written by ciprivacy scripts/slurm/local-cluster-up.sh"

say() { echo "local-cluster-down: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    say "needs root: sudo $0"
    exit 2
fi

stop() {
    local name=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping $name ($pid)"
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name ($pid) still there after 10 s: killing it"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# Jobs first, so that no job's processes outlive slurmd.
if [ -s "$STATE/run/slurmctld.pid" ] && kill -0 "$(cat "$STATE/run/slurmctld.pid")" 2>/dev/null; then
    squeue -h -o %i 2>/dev/null | xargs -r scancel --quiet 2>/dev/null || true
fi
stop slurmd "$STATE/run/slurmd.pid"
stop slurmctld "$STATE/run/slurmctld.pid"
stop munged "$STATE/run/munged.pid"

if [ "${1:-}" = "--purge" ]; then
    for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
        if [ -e "$conf" ] && grep -qxF "$MARK" "$conf"; then
            rm -f "$conf"
        fi
    done
    rm -rf "$STATE"
    say "removed its configuration and $STATE"
fi
say "down"
