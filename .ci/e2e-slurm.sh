#!/usr/bin/env bash
# End-to-end check against a real one-node Slurm cluster (started by slurm-up.sh from Debian's
# packages): a sweep submitted through descent as a job array, every short member finishing, a
# long member scancelled mid-run and resumed from its checkpoint by a new job, the TUI showing
# the jobs and Slurm's states, and sbatch's own refusal shown. Usage: .ci/e2e-slurm.sh BIN
set -euo pipefail

# has ARGS…: grep -q ARGS over the whole of stdin. Read it all first: under pipefail, grep -q
# quits at its first match and a writer still writing dies of SIGPIPE, failing the pipeline.
has() { local text; text=$(cat); grep -q "$@" <<<"$text"; }

BIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
SLURM_BASE="$TMP/slurm"
SESSION="descent-slurm-$$"
WS="$TMP/ws"

cleanup() {
  tmux kill-session -t "$SESSION" 2>/dev/null || true
  scancel --user="$(id -un)" 2>/dev/null || true
  "$ROOT/.ci/slurm-down.sh" "$SLURM_BASE"
  rm -rf "$TMP" || true
}
trap cleanup EXIT

fail() {
  echo "slurm e2e FAILED: $*" >&2
  "$BIN" queue -w "$WS" >&2 || true
  "$BIN" runs -w "$WS" >&2 || true
  squeue >&2 || true
  tail -n 20 "$SLURM_BASE"/log/slurmctld.log "$SLURM_BASE"/log/slurmd.log >&2 || true
  for f in "$WS"/sweeps/*/slurm-*.out; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}

step() { echo "slurm e2e: $*"; }

# until SECONDS COMMAND…: until the command succeeds.
until_ok() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out waiting for: $*"
    sleep 0.5
  done
}

step "start a one-node cluster"
eval "$("$ROOT/.ci/slurm-up.sh" "$SLURM_BASE")"
export SLURM_CONF

mkdir -p "$WS/experiments"
cat > "$WS/descent.toml" <<'TOML'
threads = 1
executor = "slurm"
[slurm]
partition = "debug"
time = "00:20:00"
cpus_per_run = 1
TOML
# Two short members that finish and two long ones: one is scancelled and resumed.
cat > "$WS/experiments/lr.toml" <<'TOML'
kind = "supervised"
[data]
source = "builtin:moons"
batch_size = 32
[model]
arch = "mlp"
hidden = [16]
[optim]
name = "sgd"
lr = 0.05
momentum = 0.9
[train]
steps = 300
eval_every = 50
checkpoint_every = 50
[sweep]
metric = "eval_accuracy"
[sweep.grid]
seed = [0, 1]
"train.steps" = [300, 1000000]
TOML
"$BIN" check "$WS" >/dev/null || fail "the workspace is not valid"

step "descent sweep submits the members as one job array"
out=$("$BIN" sweep lr -w "$WS") || fail "descent sweep failed: $out"
echo "$out"
echo "$out" | has "submitted to Slurm as job array" || fail "no job array: $out"
sweep_id=$(echo "$out" | sed -n 1p | awk '{print $2}' | tr -d :)
job=$(echo "$out" | grep -oE 'job array [0-9]+' | grep -oE '[0-9]+')
[ "$(squeue -h -r -j "$job" | wc -l)" -ge 1 ] || fail "squeue does not know job $job"
members=("$WS"/runs/lr/*/)
[ "${#members[@]}" = 4 ] || fail "expected 4 member folders, found ${#members[@]}"
for d in "${members[@]}"; do
  grep -q "\"job_id\": \"$job\"" "$d/job.json" || fail "$d has no job.json for job $job"
done
member_dir() { # member N's folder
  for d in "${members[@]}"; do
    grep -q "\"member\": $1," "$d/launch.json" && { echo "${d%/}"; return; }
  done
}
long=$(member_dir 2)   # seed 0, 1,000,000 steps
state_of() { grep -oE '"state": *"[a-z]+"' "$1/status.json" | grep -oE '[a-z]+"$' | tr -d '"'; }
step_of() { grep -oE '"step": *[0-9]+' "$1/status.json" | grep -oE '[0-9]+$'; }
# Functions, so that until_ok reads the status afresh each time.
state_is() { [ "$(state_of "$1")" = "$2" ]; }
step_past() { [ "$(step_of "$1")" -gt "$2" ]; }

step "the TUI shows the runs' jobs and what Slurm says of them"
tmux new-session -d -s "$SESSION" -x 160 -y 40 "SLURM_CONF=$SLURM_CONF '$BIN' '$WS'"
screen() { tmux capture-pane -p -t "$SESSION"; }
tui_shows() { screen | has -F -- "$1"; }
until_ok 60 tui_shows "slurm ${job}_"
until_ok 60 tui_shows "RUNNING (on "
tmux send-keys -t "$SESSION" a
until_ok 20 tui_shows "Sweep $sweep_id"

step "the short members finish on the cluster"
for n in 1 3; do
  d=$(member_dir $n)
  until_ok 300 state_is "$d" finished
done

step "a long member scancelled mid-run saves a checkpoint and stops"
until_ok 120 state_is "$long" running
until_ok 120 step_past "$long" 150
scancel "${job}_1" || fail "scancel refused"
until_ok 60 state_is "$long" stopped
grep -q "terminated (SIGTERM)" "$long/status.json" || fail "the scancelled member does not say it was terminated"
stopped_at=$(step_of "$long")

step "submitted again, it resumes from its checkpoint in a new job"
out=$("$BIN" run --resume "$long" --queue -w "$WS") || fail "resubmitting failed: $out"
echo "$out" | has "submitted to Slurm as job" || fail "not resubmitted: $out"
until_ok 120 grep -q '"event":"resume"' "$long/events.jsonl"
until_ok 120 state_is "$long" running
resumed=$(grep '"event":"resume"' "$long/events.jsonl" | tail -1 | grep -oE 'from step [0-9]+' | grep -oE '[0-9]+')
[ "$resumed" -ge 100 ] && [ "$resumed" -le "$stopped_at" ] ||
  fail "resumed from step $resumed, not from a checkpoint at or before $stopped_at"
until_ok 60 step_past "$long" "$stopped_at"

step "descent queue lists the jobs; cancelling the sweep stops its runs and their jobs"
"$BIN" queue -w "$WS" | has -E "slurm [0-9_]+ RUNNING" || fail "descent queue shows no running job"
"$BIN" queue cancel "$sweep_id" -w "$WS" || fail "descent queue cancel failed"
for n in 2 4; do
  d=$(member_dir $n)
  s=$(state_of "$d")
  [ "$s" = stopped ] || fail "member $n is $s after the cancel"
done
no_jobs() { [ -z "$(squeue -h)" ]; }
until_ok 60 no_jobs
"$BIN" sweeps "$sweep_id" -w "$WS" | has -E "^ +1 " || fail "the ranking has no first member"

step "sbatch refusing shows its own message, and the run says it was not submitted"
sed -i 's/^partition = "debug"$/partition = "nosuch"/' "$WS/descent.toml"
if out=$("$BIN" run lr --queue -w "$WS" 2>&1); then fail "a bad partition was accepted: $out"; fi
echo "$out" | has -i "invalid partition" || fail "sbatch's message is not shown: $out"
newest=$(ls -d "$WS"/runs/lr/*/ | sort | tail -1)
state_is "$newest" failed && grep -q "not submitted: sbatch refused" "$newest/status.json" ||
  fail "the refused run does not say it was not submitted"
tmux kill-session -t "$SESSION"
echo "slurm e2e: passed"
