#!/usr/bin/env bash
# End-to-end check of the real descent binary driven in tmux at 120×40, on a temporary copy of
# the demo workspace: switch panes, open help, break and fix a config, shrink the terminal,
# quit. Usage: .ci/e2e-tui.sh PATH/TO/descent
set -euo pipefail

# has ARGS…: grep -q ARGS over the whole of stdin. Read it all first: under pipefail, grep -q
# quits at its first match and a writer still writing dies of SIGPIPE, failing the pipeline.
has() { local text; text=$(cat); grep -q "$@" <<<"$text"; }

BIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
SESSION="descent-e2e-$$"
WS="$TMP/ws"
cp -r "$ROOT/workspaces/demo" "$WS"
rm -rf "$WS/runs" "$WS/logs"
# Long enough to watch, pause and resume; CI stops it at the end.
sed -i 's/^steps = 2000$/steps = 1000000/' "$WS/experiments/digits-mlp.toml"
# The demo pretraining finishes in about two minutes: long enough here to be stopped by hand.
sed -i 's/^steps = 2000$/steps = 1000000/' "$WS/experiments/arithmetic-lm.toml"
# The 2-D diffusion toy, short enough for an unoptimised build.
sed -i 's/^steps = 1500$/steps = 300/' "$WS/experiments/moons-diffusion.toml"
# A private, empty hub cache so the panes show this workspace only.
export HF_HOME="$TMP/hf"

cleanup() {
  tmux kill-session -t "$SESSION" 2>/dev/null || true
  # Runs are detached on purpose; a failed check must not leave one training forever.
  for st in "$WS"/runs/*/*/status.json; do
    [ -f "$st" ] || continue
    pid=$(grep -oE '"pid": *[0-9]+' "$st" | grep -oE '[0-9]+$')
    # A queued run has no process yet (pid 0, which would name this script's group).
    [ -n "$pid" ] && [ "$pid" != 0 ] && kill "$pid" 2>/dev/null || true
  done
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
  until screen | has -F -- "$1"; do
    ((SECONDS < deadline)) || fail "did not see '$1'"
    sleep 0.2
  done
}

# wait_gone TEXT [SECONDS]: until TEXT is no longer on screen.
wait_gone() {
  local deadline=$((SECONDS + ${2:-10}))
  while screen | has -F -- "$1"; do
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
wait_for "Experiments (12)" 20
wait_for "configs ok"
wait_for "digits-mlp"

step "number keys switch panes"
key 2; wait_for "Datasets (9)"; wait_for "built in"; wait_for "builtin:digits"
key 3; wait_for "No checkpoints yet"
key 4; wait_for "No diffusion models to sample yet"
key 5; wait_for "GRPO experiments (2)"; wait_for "No runs of arithmetic-d3s yet"
key 6; wait_for "auto picks"; wait_for "Machine"; wait_for "GPUs"
key 7; wait_for "Log ("; wait_for "logging to"
key Tab; wait_for "Experiments (12)"
key BTab; wait_for "Log ("
key 1; wait_for "Experiments (12)"

step "? opens help listing the keymap, Esc closes it"
key '?'; wait_for "Keys"; wait_for "quit (runs keep running)"; wait_for "Shift-Tab"
key Escape; wait_gone "quit (runs keep running)"

step "/ filters the experiment list"
key /; key d i g i t s; wait_for "Experiments (3)"
key Escape; wait_for "Experiments (12)"

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
wait_for "Experiments (13)"

step "a 20×5 terminal gets a message, and the panes come back"
tmux resize-window -t "$SESSION" -x 20 -y 5
wait_for "Terminal too"
tmux resize-window -t "$SESSION" -x 120 -y 40
wait_for "Experiments (13)"

# step_of: the step counter of the run shown in the Runs table.
step_of() { screen | grep -oE '(running|paused) +[0-9]+/1000000' | grep -oE '[0-9]+/' | tr -d / | sed -n 1p; }

step "r starts the digits experiment; the step counter and the loss chart move"
key /; key d i g i t s - m l p; key Enter
wait_for "Experiments (1)"
key r
wait_for "started digits-mlp/" 5
wait_for "1 active run" 20
wait_for "running" 20
wait_for "╭ loss" 20
first=$(step_of); sleep 2; second=$(step_of)
[ -n "$first" ] && [ -n "$second" ] && [ "$second" -gt "$first" ] ||
  fail "the step counter did not move ($first → $second)"

step "p pauses the run and p resumes it"
key p; wait_for "paused" 10
paused_at=$(step_of); sleep 1.5
[ "$(step_of)" = "$paused_at" ] || fail "a paused run kept stepping"
key p; wait_for "running" 10

step "v shows the running run's gradient probes: coherence and sharpness charts; v goes back"
key v
wait_for "m-coherence" 10
wait_for "sharpness · edge 38/η (Adam)" 10
wait_for "probes: coherence, sharpness, EL2N" 30
wait_for "EL2N · step" 60
key v
wait_for "╭ loss" 10
key Escape

step "q quits with status 0 and restores the terminal"
key q
wait_for "descent exited with 0"
[ "$(tmux display-message -p -t "$SESSION" '#{alternate_on}')" = "0" ] ||
  fail "the terminal was left in the alternate screen"
screen | has -F "Experiments (" && fail "the TUI's screen was not cleared away"

step "the run kept going after the TUI closed"
runs_line() { "$BIN" runs -w "$WS" | grep digits-mlp; }
runs_line | has running || fail "descent runs does not show the run running: $(runs_line)"
a=$(runs_line | grep -oE '[0-9]+/1000000' | cut -d/ -f1); sleep 2
b=$(runs_line | grep -oE '[0-9]+/1000000' | cut -d/ -f1)
[ "$b" -gt "$a" ] || fail "the run stopped stepping after the TUI quit ($a → $b)"
run_dir=$(ls -d "$WS"/runs/digits-mlp/*/)
"$BIN" ctl "$run_dir" stop | has "acknowledged" || fail "ctl stop was not acknowledged"
"$BIN" runs -w "$WS" | grep digits-mlp | has stopped || fail "the run did not stop"

step "Datasets pane: the digits show image samples, the class histogram and their rows"
tmux send-keys -t "$SESSION" "clear; '$BIN' '$WS'; echo \"descent exited with \$?\"" Enter
wait_for "Experiments (13)" 20
key 2
wait_for "Classes: label (10)" 20
wait_for "Columns (65)"
wait_for "Rows 0–19"
screen | has "▀\|▄" || fail "no half-block image samples on the Datasets pane"
key J; wait_for "Rows 20–39" 10
key L; wait_for "from 5; H/L scroll" 10

step "a ragged CSV in data/ gets a message naming the file and line; the pane keeps working"
printf 'a,b\n1,2\n3,4,5\n' > "$WS/data/ragged.csv"
key /; key r a g g e d; key Enter
wait_for "Datasets (1)" 10
wait_for "ragged.csv:" 20; wait_for "has 3 fields"
key Escape
wait_for "Datasets (10)" 10

step "iris shows its numbers as written and its column names whole"
key /; key i r i s; key Enter
wait_for "Datasets (1)" 10
wait_for "sepal length (cm)" 20
screen | has "5\.1 " || fail "iris's 5.1 is not shown as 5.1"
screen | has "5\.0999" && fail "iris's 5.1 is shown as its f64 expansion"
key Escape
wait_for "Datasets (10)" 10

step "the generated arithmetic corpus browses as prompt/completion rows"
key /; key a r i t h m e t i c; key Enter
wait_for "Datasets (1)" 10
wait_for "completion" 20
screen | has -E "[0-9]+\+[0-9]+" || fail "no sums among the corpus rows"
key Escape
wait_for "Datasets (10)" 10

step "Checkpoints pane: the stopped run's checkpoint opens as a tensor tree"
key 3
wait_for "descent run checkpoint" 20
wait_for "▾ fc0"
wait_for "F32 [64, 256]"
key J; key J; key Enter
wait_for "L2 norm" 20
wait_for "histogram"

step "R resumes the stopped run; killed with kill -9 it is failed at once, with the reason, and R resumes it"
key 1
key /; key d i g i t s - m l p; key Enter
wait_for "Experiments (1)" 10
key R
wait_for "resumed digits-mlp/" 5
wait_for "running" 20
pid=$(grep -oE '"pid": *[0-9]+' "$run_dir/status.json" | grep -oE '[0-9]+$')
kill -9 "$pid"
wait_for "killed (SIGKILL" 10
wait_for "failed"
key R
wait_for "resumed digits-mlp/" 5
wait_for "running" 20
"$BIN" ctl "$run_dir" stop | has "acknowledged" || fail "ctl stop was not acknowledged"
key Escape

step "the 2-D diffusion toy trains from the Runs pane and exports its model"
key /; key m o o n s - d; key Enter
wait_for "Experiments (1)" 10
key r
wait_for "started moons-diffusion/" 5
wait_for "finished" 120
moons_dir=$(ls -d "$WS"/runs/moons-diffusion/*/)
[ -f "$moons_dir/model/unet/config.json" ] || fail "the finished diffusion run exported no model/ folder"
key Escape

step "W starts the demo sweep: its members wait for the slot and run in turn; a ranks them"
key /; key m o o n s - s; key Enter
wait_for "Experiments (1)" 10
key W
wait_for "sweep of 6: 1 started, 5 queued" 5
wait_for "sweep member 6: optim.lr=0.3 seed=1" 10
key a
wait_for "Sweep · eval_accuracy (best high)" 10
wait_for "#6" 300
[ "$(ls -d "$WS"/runs/moons-sweep/*/ | wc -l)" = 6 ] || fail "the sweep did not make six runs"
grep -l '"state": "finished"' "$WS"/runs/moons-sweep/*/status.json | wc -l | has -x 6 ||
  fail "not every member finished"
key a
wait_gone "Sweep · eval_accuracy" 10

step "X twice moves the selected member to the trash; the Log pane logged the members finishing"
key X
wait_for "X again trashes moons-sweep/" 5
key X
wait_for "moved moons-sweep/" 5
wait_for "Runs (5)" 10
[ "$(ls -d "$WS"/runs/moons-sweep/*/ | wc -l)" = 5 ] || fail "the trashed run is still listed"
[ "$(ls -d "$WS"/runs/.trash/moons-sweep/*/ | wc -l)" = 1 ] || fail "nothing in the trash"
key 7
wait_for "finished at step 400/400, eval accuracy" 5
key 1
key Escape

step "Sampler pane: sample the toy with CFG, AG and LinearAG from the same seeds and compare"
key 4
wait_for "Models" 10
wait_for "moons-diffusion/" 10
wait_for "cfg,ag,linear-ag"
key J; key L; wait_for "3.5"
key r
wait_for "sampling moons-diffusion/" 5
wait_for "· finished" 60
wait_for "vs CFG"
# 64 samples × 50 steps × 2 passes for CFG; AG and LinearAG report their own counts.
screen | grep -E "^.*│cfg +6400 +100\.0" >/dev/null || fail "the CFG row does not show 6400 NFEs"
screen | grep -E "│ag +[0-9]+ +[0-9.]+ +-[0-9]+%" >/dev/null || fail "the AG row shows no NFE saving against CFG"
screen | grep -E "│linear-ag +[0-9]+" >/dev/null || fail "no LinearAG row"
wait_for "cos(ε_c, ε_u) per step"
job=$(ls -d "$WS"/samples/*/ | sed -n 1p)
[ -f "$job/cfg/scatter.png" ] && [ -f "$job/ag/points.csv" ] || fail "the job folder lacks its files"

step "Sampler pane: a Stable Diffusion pipeline opened by path samples a typed prompt"
# The tests' tiny random pipeline (its images are noise), written by the models' example.
"$(dirname "$BIN")/examples/tiny_sd" "$TMP/tiny-sd" || fail "could not write the tiny pipeline"
key o; wait_for "open"
tmux send-keys -t "$SESSION" "$TMP/tiny-sd"; key Enter
wait_for "SD 64×64 px" 10
# From "scale w": 6 settings down to steps, 2 more to samples, 3 more to the prompt.
for _ in 1 2 3 4 5 6; do key J; done
key Enter; key BSpace; key BSpace; tmux send-keys -t "$SESSION" "10"; key Enter
key J; key J
key Enter; key BSpace; key BSpace; tmux send-keys -t "$SESSION" "4"; key Enter
key J; key J; key J
key Enter; tmux send-keys -t "$SESSION" "a photo of a cat"; key Enter
wait_for "a photo of a cat"
key r
wait_for "sampling $TMP/tiny-sd" 5
wait_for "prompt" 10
wait_for "· finished" 120
# 4 samples × 10 steps × 2 passes for CFG.
screen | grep -E "│cfg +80 +20\.0" >/dev/null || fail "the CFG row does not show 80 NFEs"
screen | grep -E "│ag +[0-9]+" >/dev/null || fail "no AG row for the pipeline"
sd_job=$(ls -d "$WS"/samples/*tiny-sd*/ | sed -n 1p)
[ -f "$sd_job/cfg/sample-0003.png" ] || fail "the pipeline's job wrote no PNGs"
screen | has "▀\|▄" || fail "no half-block images of the pipeline's samples"

step "Checkpoints pane: T sends a message to a language-model folder and the reply streams in"
"$(dirname "$BIN")/examples/tiny_lm" "$TMP/tiny-lm" || fail "could not write the tiny language model"
key 3
key o; wait_for "open"
tmux send-keys -t "$SESSION" "$TMP/tiny-lm"; key Enter
wait_for "tiny-lm" 10
key T; wait_for "message to"
tmux send-keys -t "$SESSION" "hi there"; key Enter
wait_for "you  hi there" 10
wait_for "· done, chat template" 60
step "the demo pretraining run starts from the Runs pane; its checkpoint answers in the talk box"
key 1
key /; key a r i t h m e t i c - l m; key Enter
wait_for "Experiments (1)" 10
key r
wait_for "started arithmetic-lm/" 5
wait_for "running" 60
wait_for "tok/s" 60
wait_for "╭ loss" 20
key c
lm_run=$(ls -d "$WS"/runs/arithmetic-lm/*/ | sed -n 1p)
for _ in $(seq 1 60); do
  ls "$lm_run"checkpoints/step-*/tokenizer.json >/dev/null 2>&1 && break
  sleep 1
done
ls "$lm_run"checkpoints/step-*/tokenizer.json >/dev/null 2>&1 || fail "c wrote no checkpoint of the language model"
key Escape
key 3
key /; key a r i t h m e t i c; key Enter
wait_for "arithmetic-lm/" 20
key T; wait_for "message to"
tmux send-keys -t "$SESSION" "37+45"; key Enter
wait_for "you  37+45" 10
wait_for "· done, chat template" 60
key Escape
"$BIN" ctl "$lm_run" stop | has "acknowledged" || fail "ctl stop of the pretraining run was not acknowledged"

step "the demo GRPO experiment starts from the RL pane; the reward chart and a rollout show"
# The demo starts from arithmetic-lm's step 750, which the pretraining run above, stopped
# early, does not reach: here it starts from that run's newest checkpoint.
sed -i '/^from_step = 750$/d' "$WS/experiments/arithmetic-grpo.toml"
key 5
wait_for "GRPO experiments (2)" 10
key /; key g r p o; key Enter
wait_for "GRPO experiments (1)" 10
key r
wait_for "started arithmetic-grpo/" 5
wait_for "Rollouts · step" 180
wait_for "╭ reward"
wait_for "held-out accuracy"
wait_for "prompt 1/8"
wait_for "answer "
screen | has -E "^│.*│ +1 [●○] +-?[0-9]+\.[0-9]+ +[-+][0-9]+\.[0-9]+ " || fail "no completion row with its reward and advantage"
key L; wait_for "prompt 2/8" 10
grpo_run=$(ls -d "$WS"/runs/arithmetic-grpo/*/ | sed -n 1p)
for _ in $(seq 1 60); do
  [ "$(wc -l < "$grpo_run/rollouts.jsonl")" -ge 2 ] && break
  sleep 1
done
"$BIN" ctl "$grpo_run" stop | has "acknowledged" || fail "ctl stop of the GRPO run was not acknowledged"
wait_for "stopped" 30
# With the log still, K steps back from the newest step and J returns to following it
# ("live").
key K; wait_gone ", live)" 10
key J; wait_for ", live)" 10

key q
wait_for "descent exited with 0"

echo "e2e: all TUI checks passed"
