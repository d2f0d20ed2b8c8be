#!/usr/bin/env bash
# The gradient probes' overhead as a share of the step time: the demo's digits MLP (2,000
# steps) with no probes, then each probe alone at the demo's cadence (coherence every 25,
# sharpness every 200, opposing every 50; EL2N every step) and at a denser one, then all of
# them but EL2N, interleaved over repetitions.
# Usage: benches/probes.sh [BINARY] [REPS]
set -euo pipefail
BIN=${1:-target/release/descent}
REPS=${2:-3}
WS=$(mktemp -d)
trap 'rm -rf "$WS"' EXIT
mkdir -p "$WS/experiments"
echo 'device = "cpu"' > "$WS/descent.toml"
base=$(sed '/^# Gradient probes/,$d' workspaces/demo/experiments/digits-mlp.toml)
variant() { # NAME EXTRA
  printf '%s\n[probes.el2n]\nenabled = false\n%s\n' "$(echo "$base" | sed "0,/^name = .*/s//name = \"$1\"/")" "$2" \
    > "$WS/experiments/$1.toml"
}
variant none ""
variant coherence $'[probes.coherence]\nevery = 25'
variant coherence10 $'[probes.coherence]\nevery = 10'
variant sharpness $'[probes.sharpness]\nevery = 200'
variant sharpness100 $'[probes.sharpness]\nevery = 100'
variant opposing $'[probes.opposing]\nevery = 50'
variant all $'[probes.coherence]\nevery = 25\n[probes.sharpness]\nevery = 200\n[probes.opposing]\nevery = 50'
# EL2N is on unless disabled: its variant drops the line that turns it off.
printf '%s\n' "$(echo "$base" | sed '0,/^name = .*/s//name = "el2n"/')" > "$WS/experiments/el2n.toml"
names="none el2n coherence coherence10 sharpness sharpness100 opposing all"
declare -A total
for n in $names; do total[$n]=0; done
for r in $(seq "$REPS"); do
  for n in $names; do
    "$BIN" run "$n" -w "$WS" > /dev/null
    dir=$(ls -d "$WS/runs/$n"/*/ | tail -1)
    # Seconds from the first to the last training record.
    secs=$(python3 -c "
import json,sys
t=[json.loads(l)['time'] for l in open('$dir/metrics.jsonl') if '\"train\"' in l]
print(t[-1]-t[0])")
    total[$n]=$(python3 -c "print(${total[$n]} + $secs)")
  done
done
ref=${total[none]}
printf '%-10s %10s %10s\n' probe "s/2000 steps" overhead
for n in $names; do
  python3 -c "print(f'%-10s %10.2f %9.1f%%' % ('$n', ${total[$n]}/$REPS, (${total[$n]}/$ref-1)*100))"
done
