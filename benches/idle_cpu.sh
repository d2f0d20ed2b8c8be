#!/usr/bin/env bash
# TUI CPU use while idle: runs the given descent binary in tmux at 120×40 on a copy of the demo
# workspace and reads its CPU time from /proc over SECONDS, on the Runs pane and on the System
# pane (which refreshes every second). Usage: benches/idle_cpu.sh target/release/descent [SECONDS]
set -euo pipefail
BIN=$(realpath "$1"); SECS=${2:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d); S="descent-idle-$$"
cp -r "$ROOT/workspaces/demo" "$TMP/ws"
trap 'tmux kill-session -t "$S" 2>/dev/null || true; rm -rf "$TMP"' EXIT
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
tmux send-keys -t "$S" q
