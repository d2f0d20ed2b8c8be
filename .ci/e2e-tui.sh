#!/usr/bin/env bash
# End-to-end check of the real descent binary driven in tmux at 120×40, on a temporary copy of
# the demo workspace: switch panes, open help, break and fix a config, shrink the terminal,
# quit. Usage: .ci/e2e-tui.sh PATH/TO/descent
set -euo pipefail

BIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
SESSION="descent-e2e-$$"
WS="$TMP/ws"
cp -r "$ROOT/workspaces/demo" "$WS"
rm -rf "$WS/runs" "$WS/logs"
# A private, empty hub cache so the panes show this workspace only.
export HF_HOME="$TMP/hf"

cleanup() {
  tmux kill-session -t "$SESSION" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

screen() { tmux capture-pane -p -t "$SESSION"; }

fail() {
  echo "e2e FAILED: $*" >&2
  echo "----- screen -----" >&2
  screen >&2 || true
  echo "----- log -----" >&2
  cat "$WS/logs/descent.log" >&2 2>/dev/null || true
  exit 1
}

# wait_for TEXT [SECONDS]: until TEXT is on screen.
wait_for() {
  local deadline=$((SECONDS + ${2:-10}))
  until screen | grep -qF -- "$1"; do
    ((SECONDS < deadline)) || fail "did not see '$1'"
    sleep 0.2
  done
}

# wait_gone TEXT [SECONDS]: until TEXT is no longer on screen.
wait_gone() {
  local deadline=$((SECONDS + ${2:-10}))
  while screen | grep -qF -- "$1"; do
    ((SECONDS < deadline)) || fail "'$1' stayed on screen"
    sleep 0.2
  done
}

key() { tmux send-keys -t "$SESSION" "$@"; sleep 0.3; }

step() { echo "e2e: $*"; }

# A plain shell in tmux, so that after quitting we can look at the restored terminal.
tmux new-session -d -s "$SESSION" -x 120 -y 40 "bash --norc --noprofile"
tmux set-option -t "$SESSION" window-size manual >/dev/null 2>&1 || true
tmux send-keys -t "$SESSION" "PS1='shell> '; clear" Enter
wait_for "shell>"
tmux send-keys -t "$SESSION" "'$BIN' '$WS'; echo \"descent exited with \$?\"" Enter

step "the Runs pane lists the demo experiments"
wait_for "Experiments (6)" 20
wait_for "configs ok"
wait_for "digits-mlp"

step "number keys switch panes"
key 2; wait_for "No datasets in data/"
key 3; wait_for "No checkpoints yet"
key 4; wait_for "No diffusion experiments"
key 5; wait_for "No GRPO experiments"
key 6; wait_for "auto picks"; wait_for "Machine"; wait_for "GPUs"
key 7; wait_for "Log ("; wait_for "logging to"
key Tab; wait_for "Experiments (6)"
key BTab; wait_for "Log ("
key 1; wait_for "Experiments (6)"

step "? opens help listing the keymap, Esc closes it"
key '?'; wait_for "Keys"; wait_for "quit (runs keep running)"; wait_for "Shift-Tab"
key Escape; wait_gone "quit (runs keep running)"

step "/ filters the experiment list"
key /; key d i g i t s; wait_for "Experiments (2)"
key Escape; wait_for "Experiments (6)"

step "a config with a syntax error shows file:line:col, and clears when fixed"
cat > "$WS/experiments/broken.toml" <<'TOML'
kind = "supervised"
[data]
source = "builtin:digits"
[model]
arch = "mlp"
[train]
steps = = 10
TOML
wait_for "experiments/broken.toml:7:9: extra \`=\`" 5
wait_for "1 config error"
# Fix it the way editors save: write a temp file, rename it over the original.
sed 's/= = 10/= 10/' "$WS/experiments/broken.toml" > "$WS/experiments/.broken.toml.tmp"
mv "$WS/experiments/.broken.toml.tmp" "$WS/experiments/broken.toml"
wait_for "configs ok" 5
wait_gone "broken.toml:7:9"
wait_for "Experiments (7)"

step "a 20×5 terminal gets a message, and the panes come back"
tmux resize-window -t "$SESSION" -x 20 -y 5
wait_for "Terminal too"
tmux resize-window -t "$SESSION" -x 120 -y 40
wait_for "Experiments (7)"

step "q quits with status 0 and restores the terminal"
key q
wait_for "descent exited with 0"
[ "$(tmux display-message -p -t "$SESSION" '#{alternate_on}')" = "0" ] ||
  fail "the terminal was left in the alternate screen"
screen | grep -qF "Experiments (" && fail "the TUI's screen was not cleared away"

echo "e2e: all TUI checks passed"
