#!/usr/bin/env python3
"""A long run that is still growing, for the TUI CPU benchmark (benches/idle_cpu.sh).

Writes RUN_DIR/metrics.jsonl with STEPS training records (and an evaluation every 100 steps)
in descent's schema, then appends about RATE records a second, rewriting status.json as a
live run of this process does, until it is killed. Plain Python, no packages.

Usage: benches/long_run.py RUN_DIR STEPS RATE
"""
import json
import math
import os
import socket
import sys
import time

run_dir, steps, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
os.makedirs(run_dir, exist_ok=True)
tensors = ["fc0.bias", "fc0.weight", "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
t0 = time.time() - steps / 1000.0


def train(step):
    loss = 2.3 * math.exp(-step / 2e5) + 0.05 * math.sin(step * 0.37)
    return {
        "kind": "train", "step": step, "time": t0 + step / 1000.0, "loss": loss,
        "grad_l2": 0.5 + 0.1 * math.cos(step * 0.11), "grad_l1": 90.0, "lr": 1e-3,
        "clip_scale": 1.0, "examples_per_s": 120000.0,
        "params": {n: {"grad_l2": 0.1 * (i + 1) * (1 + 0.01 * math.sin(step)),
                       "update_ratio": 1e-4 * (i + 1)} for i, n in enumerate(tensors)},
    }


def write_status(step):
    status = {
        "experiment": os.path.basename(os.path.dirname(run_dir)),
        "run_id": os.path.basename(run_dir), "state": "running", "step": step,
        "total_steps": 100 * steps, "pid": os.getpid(), "host": socket.gethostname(),
        "device": "cpu", "started_at": t0, "heartbeat": time.time(), "loss": 0.1,
    }
    tmp = os.path.join(run_dir, "status.json.tmp")
    with open(tmp, "w") as f:
        json.dump(status, f)
    os.replace(tmp, os.path.join(run_dir, "status.json"))


def records(first, last):
    out = []
    for s in range(first, last + 1):
        out.append(json.dumps(train(s)))
        if s % 100 == 0:
            out.append(json.dumps({"kind": "eval", "step": s, "time": t0 + s / 1000.0,
                                   "loss": 0.2, "accuracy": 0.95}))
    return "\n".join(out) + "\n"


metrics = os.path.join(run_dir, "metrics.jsonl")
with open(metrics, "w") as f:
    for first in range(1, steps + 1, 10000):
        f.write(records(first, min(first + 9999, steps)))
write_status(steps)
print("ready", flush=True)
step = steps
while True:
    time.sleep(0.1)
    n = max(1, int(rate / 10))
    with open(metrics, "a") as f:
        f.write(records(step + 1, step + n))
    step += n
    write_status(step)
