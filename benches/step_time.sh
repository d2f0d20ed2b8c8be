#!/usr/bin/env bash
# Step time of descent against PyTorch, interleaved over ROUNDS rounds on the same machine;
# prints each model's median step time for both and the ratio. Needs `pip install torch`.
# PYTHON names the interpreter that has torch (default python3).
# Usage: benches/step_time.sh [ROUNDS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}; STEPS=${2:-200}
cargo build -q --release -p descent-models --example step_time
BIN=${CARGO_TARGET_DIR:-target}/release/examples/step_time
OUT=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  RAYON_NUM_THREADS=2 "$BIN" "$STEPS" | grep '^descent' >> "$OUT"
  "${PYTHON:-python3}" benches/step_time.py "$STEPS" 2>/dev/null | grep '^pytorch' >> "$OUT"
done
python3 - "$OUT" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(descent|pytorch) (.+?): step ([\d.]+) ms", line)
    if m:
        rows.setdefault(m.group(2), {}).setdefault(m.group(1), []).append(float(m.group(3)))
for model, r in rows.items():
    d, p = statistics.median(r["descent"]), statistics.median(r["pytorch"])
    print(f"{model}: descent {d:.2f} ms, pytorch {p:.2f} ms, descent/pytorch {d / p:.2f} "
          f"(medians of {len(r['descent'])} rounds; descent range {min(r['descent']):.2f}-{max(r['descent']):.2f}, "
          f"pytorch {min(r['pytorch']):.2f}-{max(r['pytorch']):.2f})")
PY
rm -f "$OUT"
