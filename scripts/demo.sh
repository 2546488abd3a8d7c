#!/usr/bin/env bash
# `make demo`: run what the pipeline can do so far, end to end, and print where the report is.
# Uses the real MIMIC-IV demo when it is present; on a fresh machine without it, a tiny MIMIC-shaped
# hospital written by ehrpredict.testing, so the command never fails for lack of data.
set -euo pipefail
data="${1:?usage: demo.sh DATA_DIR OUT_DIR}"
out="${2:?usage: demo.sh DATA_DIR OUT_DIR}"
bin=.venv/bin

if [ -f "$data/hosp/patients.csv.gz" ]; then
  source_dir="$data"
  name="mimic-iv-demo"
  echo "== using the MIMIC-IV demo at $data"
else
  source_dir="$out/tiny-hospital-raw"
  name="tiny-hospital"
  echo "== the MIMIC-IV demo is not at $data (set EHRPREDICT_MIMIC_DEMO); using a tiny built-in hospital"
  "$bin/python" -c "import sys; from ehrpredict.testing.mimic import minimal_hospital; minimal_hospital(sys.argv[1])" "$source_dir"
fi

dataset="$out/$name-meds"
echo "== ingest: $source_dir -> $dataset"
"$bin/ehrpredict" ingest mimic4 "$source_dir" "$dataset" --overwrite
echo
echo "== info"
"$bin/ehrpredict" info "$dataset"
echo
echo "== label every built-in task"
labels="$out/$name-labels"
"$bin/ehrpredict" label "$dataset" all "$labels" | grep -E "^[a-z0-9_]+: |labeled"
echo
echo "demo done. Dataset: $dataset"
echo "report: $dataset/data_quality.json  (quarantined rows: $dataset/quarantine.parquet)"
echo "labels and cohort reports: $labels/"
