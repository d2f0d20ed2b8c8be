#!/usr/bin/env bash
# TUI CPU use while idle: runs the given descent binary in tmux at 120×40 on a copy of the demo
# workspace and reads its CPU time from /proc over SECONDS, on the Runs pane and on the System
# pane (which refreshes every second). Usage: benches/idle_cpu.sh target/release/descent [SECONDS]
set -euo pipefail
BIN=$(realpath "$1"); SECS=${2:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d); S="descent-idle-$$"
cp -r "$ROOT/workspaces/demo" "$TMP/ws"
sed -i 's/^steps = 2000$/steps = 100000000/' "$TMP/ws/experiments/digits-mlp.toml"
trap 'for d in "$TMP"/ws/runs/*/*/; do "$BIN" ctl "$d" stop >/dev/null 2>&1; done; tmux kill-session -t "$S" 2>/dev/null || true; rm -rf "$TMP"' EXIT
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
tmux send-keys -t "$S" q
