#!/usr/bin/env bash
# Stops the one-node cluster slurm-up.sh started under $1 (default /tmp/descent-slurm), and
# waits for the daemons to exit, so that their folders can be removed after.
base=${1:-/tmp/descent-slurm}
pids=()
for f in "$base/run/slurmd.pid" "$base/run/slurmctld.pid" "$base/munge/munged.pid"; do
  if [ -f "$f" ]; then
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null && pids+=("$pid")
  fi
done
for _ in $(seq 50); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && exit 0
  sleep 0.2
done
for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
exit 0
