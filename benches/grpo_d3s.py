#!/usr/bin/env python3
"""GRPO against GRPO+D³S on the demo model, over seeds, at equal steps (equal generation).

Usage: benches/grpo_d3s.py DESCENT_BIN WORKSPACE SEED...

WORKSPACE must hold a finished (or step-750) run of arithmetic-lm and the demo experiments
arithmetic-grpo and arithmetic-d3s. Each (method, seed) is run with `descent run` on a copy of
the experiment with that seed; then the held-out accuracy and mean reward are printed against
the step, the cumulative trained tokens (tokens with a weight in the loss), the cumulative
sequences in the backward pass, and the wall time. Standard library only.
"""
import json
import pathlib
import re
import statistics
import subprocess
import sys


def run(bin_, ws, exp, seed):
    src = (ws / "experiments" / f"{exp}.toml").read_text()
    name = f"{exp}-s{seed}"
    text = re.sub(r'^name = ".*"$', f'name = "{name}"', src, count=1, flags=re.M)
    # The experiment's seed (the first); the data's seed under [data] stays.
    text = re.sub(r"^seed = \d+$", f"seed = {seed}", text, count=1, flags=re.M)
    (ws / "experiments" / f"{name}.toml").write_text(text)
    subprocess.run([bin_, "run", name], cwd=ws, check=True, stdout=subprocess.DEVNULL)
    run_dir = sorted((ws / "runs" / name).iterdir())[-1]
    train, evals = {}, {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "train":
            train[r["step"]] = r
        else:
            evals[r["step"]] = r
    rows = []
    # Wall time is the steps' own (generation and update), without the evaluations.
    tokens = seqs = wall = 0
    for step in sorted(train):
        e = train[step]["extra"]
        tokens += e["train/loss_tokens"]
        seqs += e["train/sequences"]
        wall += e["step_time"]
        if step in evals:
            rows.append(
                (step, tokens, seqs, wall, evals[step]["accuracy"],
                 e["reward"], e["generation/tokens_per_s"])
            )
    base = evals[0]["accuracy"]
    return base, rows


def main():
    bin_, ws = sys.argv[1], pathlib.Path(sys.argv[2]).resolve()
    seeds = [int(s) for s in sys.argv[3:]] or [0, 1, 2]
    results = {}
    # Interleaved, so that a slower stretch of the machine hits both methods alike.
    for seed in seeds:
        for exp in ["arithmetic-grpo", "arithmetic-d3s"]:
            results[(exp, seed)] = run(bin_, ws, exp, seed)
            base, rows = results[(exp, seed)]
            print(f"{exp} seed {seed}: base {base:.3f}, final {rows[-1][4]:.3f}", flush=True)
    for exp in ["arithmetic-grpo", "arithmetic-d3s"]:
        print(f"\n{exp}: step | trained tokens | sequences | wall s | held-out acc "
              "mean (min–max) | reward | gen tok/s")
        steps = [r[0] for r in results[(exp, seeds[0])][1]]
        for i, step in enumerate(steps):
            col = lambda k: [results[(exp, s)][1][i][k] for s in seeds]
            acc = col(4)
            print(f"{step} | {statistics.mean(col(1)):.0f} | {statistics.mean(col(2)):.0f} | "
                  f"{statistics.mean(col(3)):.0f} | {statistics.mean(acc):.3f} "
                  f"({min(acc):.3f}–{max(acc):.3f}) | {statistics.mean(col(5)):.3f} | "
                  f"{statistics.mean(col(6)):.0f}")


if __name__ == "__main__":
    main()
