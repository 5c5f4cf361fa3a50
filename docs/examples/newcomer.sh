#!/usr/bin/env bash
# The quickstart as a newcomer follows it, run by `make newcomer`: the wheel from dist/ installed (not
# editable) into a new venv, the emulator started, videos made and uploaded with its commands, and every
# docs example DAG run with `airflow dags test`, each result checked. The quickstart page includes the
# sections between the START/END markers. Inputs: NEWCOMER (an empty work folder), PYTHON, CONSTRAINTS.
set -euo pipefail
REPO=$(pwd)
WHEEL=$(ls "$REPO"/dist/*.whl)
# The docs point at Airflow's published constraints file; CI has no internet beyond the package
# registries, so the newcomer test uses the repository's constraints.txt (the same Airflow version).
CONSTRAINTS=${CONSTRAINTS:-$REPO/constraints.txt}
cd "$NEWCOMER"
step() { echo "== $(date -u +%H:%M:%S) $*"; }
if [ -n "${PYTHON:-}" ]; then python3() { command "$PYTHON" "$@"; }; fi  # the Makefile's $(PYTHON) makes the venv

step "install the wheel into a new virtualenv"
# [START install]
python3 -m venv venv
. venv/bin/activate
pip install uv  # optional: uv installs Airflow's ~2 GB in seconds once its cache is warm; plain pip takes ~3 min
uv pip install --constraint "$CONSTRAINTS" "$WHEEL[emulator,timeline]"
# [END install]
airflow version

step "start the emulator"
# [START emulator]
python -m airflow_provider_video_actions.emulator --bucket my-videos --env-file emulator.env >emulator.log 2>&1 &
for i in $(seq 120); do [ -f emulator.env ] && break; sleep 1; done  # written once it serves
. emulator.env  # exports VERTEX_AI_EMULATOR_HOST, STORAGE_EMULATOR_HOST, VIDEO_ACTIONS_EMULATOR_CONTROL and _TOKEN
# [END emulator]
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null || true' EXIT

step "make and upload videos"
# [START videos]
python -m airflow_provider_video_actions.emulator make-video kitchen.mp4 --label wave
python -m airflow_provider_video_actions.emulator make-video playground.mp4 --label jump
python -m airflow_provider_video_actions.emulator upload kitchen.mp4 playground.mp4 gs://my-videos/videos/
python -m airflow_provider_video_actions.emulator ls gs://my-videos/videos/
# [END videos]
python -m airflow_provider_video_actions.emulator ls gs://my-videos/videos/ | grep -c "\.mp4" | grep -qx 2

step "an Airflow home and its database"
# [START airflow]
export AIRFLOW_HOME=$PWD/airflow AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags AIRFLOW__CORE__LOAD_EXAMPLES=False
mkdir -p dags && cp "$REPO/docs/examples/quickstart.py" dags/
airflow db migrate
# [END airflow]
cp "$REPO"/docs/examples/*.py dags/ && mkdir -p logs

passed=0
# expect STATE PATTERN DAG_ID [ARGS...]: `airflow dags test DAG_ID [ARGS...]` ends in STATE, its log holds PATTERN.
expect() {
  local state=$1 pattern=$2 dag_id=$3
  shift 2
  step "airflow dags test $*"
  airflow dags test "$@" >"logs/$dag_id.log" 2>&1 || true
  if grep -q "DagRun Finished: dag_id=$dag_id,.* state=$state" "logs/$dag_id.log" &&
    grep -Eq "$pattern" "logs/$dag_id.log"; then
    passed=$((passed + 1))
  else
    tail -60 "logs/$dag_id.log"
    echo "newcomer: $passed passed, 1 failed ($dag_id: wanted state=$state and /$pattern/)"
    exit 1
  fi
}

expect success "moments: [0-9]+, videos: 2, errors: 0" video_actions_quickstart
line="gs://my-videos/videos/kitchen.mp4 wave at 0.75 s (0.99)"  # the line the quickstart page quotes
grep -qF "$line" logs/video_actions_quickstart.log || { echo "newcomer: the quickstart log lacks '$line'"; exit 1; }
job=$(grep -Eo "projects/[^ ]+/batchPredictionJobs/[0-9]+" logs/video_actions_quickstart.log | head -1)
# The quickstart page's typo: a bucket that does not exist fails predict at once, naming the parameter.
expect failed "gcs_destination_prefix gs://my-vidoes/predictions: bucket 'my-vidoes' does not exist" \
  video_actions_quickstart -c '{"bucket": "my-vidoes"}'
expect success "Parsed [0-9]+ moments? from 2 videos" video_actions_sensor -c "{\"job_name\": \"$job\"}"
expect success "Parsed [0-9]+ moments? from 2 videos" video_actions_submit
expect success "Parsed [0-9]+ moments? from 2 videos" video_actions_parse
expect success "[0-9]+ shards?: [0-9]+ moments?" video_actions_sharded
expect success "Asset event: gs://my-videos/moments/" video_actions_producer
expect success "task_id=report" video_actions_consumer
expect success "ended in JOB_STATE_SUCCEEDED" video_actions_gemini
expect success "2 instances succeeded" video_actions_every_hour "$(date -u -d '+30 min' +%Y-%m-%dT%H:%M:%S+00:00)"
python -m airflow_provider_video_actions.emulator.control force_outcome state=JOB_STATE_FAILED
expect success "ended in JOB_STATE_FAILED" video_actions_failed_job  # predict fails; the run follows its last task, the partial parse
python -m airflow_provider_video_actions.emulator.control reset_knobs
python "$REPO/docs/examples/scripts/emulator_control.py" | grep -q "CreateBatchPredictionJob"
passed=$((passed + 1))
echo "newcomer: $passed passed, 0 failed"
