#!/usr/bin/env bash
# Stops the one-node cluster slurm-up.sh started under $1 (default /tmp/descent-slurm).
base=${1:-/tmp/descent-slurm}
for f in "$base/run/slurmd.pid" "$base/run/slurmctld.pid" "$base/munge/munged.pid"; do
  [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
done
