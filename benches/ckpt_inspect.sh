#!/usr/bin/env bash
# Whole-process `descent ckpt inspect` on a ~500 MB safetensors file (header only), against a
# minimal Python reference that reads the same header with json, interleaved, median of 15.
# Usage: benches/ckpt_inspect.sh [ROUNDS]   (needs a release build and python3)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/descent
FILE=${TMPDIR:-/tmp}/descent-bench-500mb.safetensors
python3 - "$FILE" <<'PY'
import json, struct, sys
n, per, off, t = 291, (500 * 1024 * 1024) // 291 // 4, 0, {}
for i in range(n):
    t[f"model.layers.{i // 9}.p{i % 9}.weight"] = {"dtype": "F32", "shape": [per], "data_offsets": [off, off + per * 4]}
    off += per * 4
h = json.dumps(t).encode(); h += b" " * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h); f.truncate(8 + len(h) + off)
PY
REF=$(mktemp); trap 'rm -f "$REF" "$FILE"' EXIT
cat > "$REF" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
for k, v in sorted(h.items()): print(k, v["dtype"], v["shape"])
PY
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=(); p=()
for _ in $(seq "${1:-15}"); do
  s=$(date +%s%N); "$BIN" ckpt inspect "$FILE" >/dev/null; e=$(date +%s%N); d+=($(((e - s) / 1000)))
  s=$(date +%s%N); python3 "$REF" "$FILE" >/dev/null; e=$(date +%s%N); p+=($(((e - s) / 1000)))
done
dm=$(printf '%s\n' "${d[@]}" | median); pm=$(printf '%s\n' "${p[@]}" | median)
echo "file: $(stat -c %s "$FILE") bytes, 291 tensors"
echo "descent ckpt inspect: ${dm} µs (median)"
echo "python3 json header:  ${pm} µs (median)"
awk -v a="$dm" -v b="$pm" 'BEGIN {printf "ratio descent/python: %.3f\n", a / b}'
