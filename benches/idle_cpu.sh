#!/usr/bin/env bash
# TUI CPU use: runs the given descent binary in tmux at 120×40 on a copy of the demo workspace
# and reads its CPU time from /proc over SECONDS: idle on the Runs pane and on the System pane
# (which refreshes every second), with the charts of a run streaming metrics, and with those of
# a run holding 1,000,000 steps that keeps growing (benches/long_run.py).
# Usage: benches/idle_cpu.sh target/release/descent [SECONDS]
set -euo pipefail
BIN=$(realpath "$1"); SECS=${2:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d); S="descent-idle-$$"
cp -r "$ROOT/workspaces/demo" "$TMP/ws"
sed -i 's/^steps = 2000$/steps = 100000000/' "$TMP/ws/experiments/digits-mlp.toml"
LONG_PID=
trap '[ -n "$LONG_PID" ] && kill "$LONG_PID"; for d in "$TMP"/ws/runs/*/*/; do "$BIN" ctl "$d" stop >/dev/null 2>&1; done; tmux kill-session -t "$S" 2>/dev/null || true; rm -rf "$TMP"' EXIT
tmux new-session -d -s "$S" -x 120 -y 40 "HF_HOME=$TMP/hf '$BIN' '$TMP/ws'"
sleep 3
PID=$(pgrep -f "^$BIN $TMP/ws" | head -1)
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
hz=$(getconf CLK_TCK)
measure() {
  local a b; a=$(ticks); sleep "$SECS"; b=$(ticks)
  awk -v t=$((b - a)) -v hz="$hz" -v s="$SECS" -v what="$1" \
    'BEGIN { printf "%s: %.3f%% of one core (%d ticks in %d s)\n", what, 100 * t / hz / s, t, s }'
}
measure "Runs pane, idle"
tmux send-keys -t "$S" 6; sleep 1
measure "System pane (1 s refresh)"
# A run streaming metrics (about a thousand steps a second) with its charts on screen.
tmux send-keys -t "$S" 1; sleep 0.3
tmux send-keys -t "$S" / d i g i t s - m l p Enter; sleep 0.5
tmux send-keys -t "$S" r; sleep 5
measure "Runs pane, charts of a streaming run"
# A long history that keeps growing: its run id sorts first, so the Runs pane shows it.
for d in "$TMP"/ws/runs/*/*/; do "$BIN" ctl "$d" stop >/dev/null 2>&1; done
python3 "$ROOT/benches/long_run.py" "$TMP/ws/runs/digits-mlp/29991231-000000" 1000000 1000 \
  > "$TMP/long.log" &
LONG_PID=$!
until grep -q ready "$TMP/long.log" 2>/dev/null; do sleep 1; done
t=$SECONDS
until tmux capture-pane -p -t "$S" | grep -q "29991231"; do sleep 0.2; done
until tmux capture-pane -p -t "$S" | grep -q "1.0e6"; do sleep 0.2; done
echo "the 1,000,000-step run's charts appeared about $((SECONDS - t)) s after its files"
measure "Runs pane, charts of a 1,000,000-step run growing by ~1,000 steps/s"
tmux send-keys -t "$S" q
