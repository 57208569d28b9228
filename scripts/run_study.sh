#!/bin/bash
# Run the study (conf/experiment/study.yaml) in sweeps of STEP seeds: each sweep covers every
# env x cell for its seeds, so the study can stop between sweeps (touch STOP in the working folder)
# and go on with FIRST=<next seed>; a re-launched seed skips its FINISHED runs and resumes
# unfinished ones. Each sweep's lines in the log record its seeds, wall time, commit, parallel jobs
# and load, which scripts/study_results.py reads back (--launch-log) for the page's wall time.
#
#   STORE=/data/study/mlflow.db FIRST=0 LAST=49 STEP=10 JOBS=2 bash scripts/run_study.sh >> study.log
#
# Arguments after the script are passed to every sweep (e.g. max_episodes=3 for a dry run);
# PYTHON picks the interpreter (default: python on the PATH).
# JOBS=1 runs a sweep in one process (Hydra's basic launcher); JOBS>1 uses joblib. Runs that differ
# only in seed train together in one process (the grouping sweeper), so a larger STEP means fuller
# groups and less overhead per run; STEP=1 gives the finest stopping points.
set -u
STORE=${STORE:?set STORE to the SQLite file of the study (an absolute path)}
FIRST=${FIRST:-0}
LAST=${LAST:-49}
STEP=${STEP:-1}
JOBS=${JOBS:-2}
LOGS=${LOGS:-logs}
PYTHON=${PYTHON:-python}
mkdir -p "$LOGS"
here=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$here" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
launcher=()
[ "$JOBS" -gt 1 ] && launcher=(hydra/launcher=joblib "hydra.launcher.n_jobs=$JOBS")
for s in $(seq "$FIRST" "$STEP" "$LAST"); do
  [ -e STOP ] && { echo "STOP found: stopped before seed $s"; break; }
  e=$(( s + STEP - 1 > LAST ? LAST : s + STEP - 1 ))
  seeds=$s; [ "$e" -gt "$s" ] && seeds=$s-$e
  t0=$(date +%s)
  echo "seed $seeds start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) code $commit jobs $JOBS"
  "$PYTHON" -m per_exp.train -m experiment=study "seed=range($s,$(( e + 1 )))" "${launcher[@]}" \
    "tracking.uri=sqlite:///$STORE" "$@" > "$LOGS/seed_$seeds.log" 2>&1
  echo "seed $seeds rc $? wall $(( $(date +%s) - t0 )) s end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
done
