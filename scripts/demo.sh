#!/usr/bin/env bash
# `make demo`: run the pipeline end to end (ingest, label, benchmark) and print where the reports are.
# With no data given, a cached 2,000-patient synthetic hospital (ehrpredict synth) is the input, so
# the command needs nothing but Python on a fresh machine. `make demo DATA=<MIMIC-IV dir>` uses a
# real MIMIC-IV directory instead (for example the demo: DATA=../shared/data/mimic-iv-demo-2.2).
set -euo pipefail
data="${1:-}"
out="${2:?usage: demo.sh [DATA_DIR] OUT_DIR}"
bin=.venv/bin

if [ -n "$data" ]; then
  [ -f "$data/hosp/patients.csv.gz" ] || [ -f "$data/hosp/patients.csv" ] || {
    echo "error: expected a MIMIC-IV directory with hosp/patients.csv.gz, got $data" >&2; exit 1; }
  source_dir="$data"
  name="$(basename "$data")"
  echo "== using the MIMIC-IV directory $data"
else
  source_dir=".cache/demo/synthetic-2000-seed0"
  name="synthetic-hospital"
  version="$("$bin/python" -c 'from ehrpredict.ingest.synth import GENERATOR_VERSION as v; print(v)')"
  if [ -f "$source_dir/SYNTHETIC.json" ] && grep -q "\"generator_version\": \"$version\"" "$source_dir/SYNTHETIC.json"; then
    echo "== using the cached synthetic hospital in $source_dir"
  else
    echo "== generating a 2,000-patient synthetic hospital in $source_dir"
    "$bin/ehrpredict" synth "$source_dir" --patients 2000 --seed 0 --overwrite
  fi
fi

dataset="$out/$name-meds"
echo
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
# The benchmark: every representation and head on two tasks that share one prediction time (48 h
# after admission), so each patient-timeline is embedded once, with a short text budget and two
# label-shuffle permutations to stay within a few minutes on 2 CPU cores. Embedding is the slow step
# on a CPU (the first run; reruns read the cache). `ehrpredict benchmark --tasks all` runs the library.
tasks="${DEMO_TASKS:-mortality_in_hospital_48h,long_los_7d}"
run="$out/$name-benchmark"
echo "== benchmark: $tasks (counts, text, counts+text x lgbm, lr)"
"$bin/ehrpredict" benchmark "$dataset" --tasks "$tasks" --representations counts,text,counts+text \
  --heads lgbm,lr --bootstrap "${DEMO_BOOTSTRAP:-200}" --shuffle-permutations 2 \
  --text-max-tokens "${DEMO_TEXT_TOKENS:-128}" --out "$run"
echo
# Keep a model: fit, calibrate and threshold one (counts/LightGBM), score the dataset with the kept
# bundle, and explain one held-out patient's score.
bundle="$out/$name-model"
echo "== fit: long_los_7d (counts/lgbm) -> $bundle"
"$bin/ehrpredict" fit "$dataset" long_los_7d --out "$bundle" --bootstrap "${DEMO_BOOTSTRAP:-200}" \
  --shuffle-permutations 2 --overwrite --quiet
echo "== predict"
"$bin/ehrpredict" predict "$bundle" "$dataset" --out "$out/$name-predictions.parquet" --quiet
subject="$("$bin/python" -c 'import sys, polars as pl; print(pl.read_parquet(sys.argv[1]).item(0, "subject_id"))' \
  "$bundle/report/held_out_predictions.parquet")"
echo "== explain: subject $subject"
# the whole card to a file first: `| head` would end explain early with SIGPIPE, a failure under pipefail
"$bin/ehrpredict" explain "$bundle" "$dataset" --subject "$subject" --html "$out/$name-explain.html" \
  > "$out/$name-explain.txt" 2>/dev/null
head -16 "$out/$name-explain.txt"
echo "  (the whole card: $out/$name-explain.txt)"
echo
echo "== serve: the kept model over HTTP on loopback, one held-out patient posted"
"$bin/python" scripts/serve_demo.py "$bundle" "$dataset" "$out/$name-predictions.parquet" "$out/$name-serve"
echo
echo "demo done. Dataset: $dataset"
echo "data quality: $dataset/data_quality.json  (quarantined rows: $dataset/quarantine.parquet; kept rows with a recorded problem: $dataset/flagged.parquet)"
echo "labels and cohort reports: $labels/"
echo "benchmark report: $run/report.html  (data: $run/report.json)"
echo "kept model: $bundle (MODEL_CARD.md, report/report.html); predictions: $out/$name-predictions.parquet; explanation: $out/$name-explain.html"
echo "serve it yourself: $bin/ehrpredict serve $bundle --keys $out/$name-serve/keys.json --dataset $dataset  (then http://127.0.0.1:8000/dashboard/)"
