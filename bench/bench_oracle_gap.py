"""How far the counts models sit below the synthetic hospital's oracle, with and without the counts'
static features (age at prediction time, hours since the latest visit start).

For every binary task with an oracle outcome (``experiments/oracle.py`` ORACLE_OUTCOMES) whose splits
all hold both classes: label once (``label_many``), then per task and setting a ``TaskData`` with
``RepresentationSettings(static_features=...)`` (before: ``()``, after: the default), ``fit_pipeline``
for each head, and the held-out AUROC of the model and of the oracle on the same rows (the held-out rows
the oracle has a probability for). Point estimates only (no bootstrap): CPU is scarce.

By default each task is featurized once, with the static features, and "before" is that matrix without
its two last columns: ``static_features=()`` gives exactly those columns (tests/unit/features/
test_counts.py), so this halves the featurizing; both settings' heads are fitted as ``fit_pipeline``
fits them (``make_estimator`` on the train matrix, tuned on the tuning matrix). ``--featurize-twice``
builds a TaskData per setting and calls ``fit_pipeline`` on each instead.

    python bench/bench_oracle_gap.py --patients 10000                     # synth + ingest once, cached
    python bench/bench_oracle_gap.py --meds .cache/synth10k-meds --heads lgbm --tasks long_los_7d,aki_48h

The synthetic hospital is generated and ingested with this checkout's code under .cache/oracle-gap/
(``ehrpredict synth DIR --patients N --seed S``, ``ehrpredict ingest mimic4 DIR MEDS``) unless ``--meds``
names an ingested one. Prints a markdown table and the mean gap (oracle − model) per head and setting.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ehrpredict import schema as S
from ehrpredict.evaluation import auroc
from ehrpredict.events.source import ParquetEvents
from ehrpredict.experiments.oracle import ORACLE_OUTCOMES, load_oracle, oracle_matches
from ehrpredict.features.registry import RepresentationSettings
from ehrpredict.models.targets import BinaryTarget
from ehrpredict.pipeline import TaskData, fit_pipeline, make_estimator
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"before": (), "after": RepresentationSettings().static_features}
ROW = "_row"


def prepare(patients: int, seed: int) -> Path:
    """The ingested synthetic hospital, made once with this checkout's code."""
    root = REPO / ".cache" / "oracle-gap" / f"synth-{patients}-{seed}"
    raw, meds = root / "raw", root / "meds"
    if not (meds / S.DATASET_FILE).exists():
        cli = [sys.executable, "-m", "ehrpredict.cli"]
        env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
        subprocess.run([*cli, "synth", str(raw), "--patients", str(patients), "--seed", str(seed)], check=True,
                       env=env)
        subprocess.run([*cli, "ingest", "mimic4", str(raw), str(meds), "--overwrite", "--quiet"], check=True, env=env)
    return meds


def both_classes(data: TaskData) -> bool:
    return all(part.height > 0 and part.get_column(S.BOOLEAN_VALUE).n_unique() == 2 for part in data.parts.values())


def fit_sliced(data: TaskData, head: str, drop: int) -> tuple[np.ndarray, int]:
    """Held-out probabilities of ``head`` fitted as ``fit_pipeline`` fits it, on the counts matrices
    without their last ``drop`` columns; and the number of columns used."""
    X = {split: data.matrix("counts", split) for split in (S.TRAIN, S.TUNING, S.HELD_OUT)}
    X = {split: M[:, : M.shape[1] - drop] for split, M in X.items()}
    target = BinaryTarget()
    model = make_estimator("binary", head, 0, log1p=True).fit(
        X[S.TRAIN], target.encode(data.parts[S.TRAIN]), X_val=X[S.TUNING], y_val=target.encode(data.parts[S.TUNING]))
    return np.asarray(model.predict_proba(X[S.HELD_OUT]))[:, 1], int(X[S.TRAIN].shape[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--meds", type=Path, help="an ingested synthetic hospital (default: made under .cache/)")
    parser.add_argument("--tasks", default="all", help="comma-separated; default every task with an oracle")
    parser.add_argument("--heads", default="lgbm,lr")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--featurize-twice", action="store_true",
                        help="a TaskData and fit_pipeline per setting (default: featurize once, slice for before)")
    args = parser.parse_args()
    start = time.perf_counter()
    meds = args.meds or prepare(args.patients, args.seed)
    oracle = load_oracle(meds)
    if oracle is None:
        sys.exit(f"expected a dataset ingested from a synthetic hospital (with an oracle), got {meds}")
    names = list(ORACLE_OUTCOMES) if args.tasks == "all" else args.tasks.split(",")
    specs = [spec for spec in map(load_task, names) if spec.label_type == "binary"]
    heads = args.heads.split(",")
    labeled = label_many(meds, specs)
    source = ParquetEvents(meds)
    splits = source.splits()
    rows = []
    print("| task | n held-out (matched) | positives | head | before | after | oracle | gap before | gap after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in specs:
        settings = SETTINGS if args.featurize_twice else {"after": SETTINGS["after"]}
        by_setting = {name: TaskData.from_splits(source, labeled[spec.name].labels, splits,
                                                 RepresentationSettings(static_features=static))
                      for name, static in settings.items()}
        held_out = by_setting["after"].parts[S.HELD_OUT].with_row_index(ROW)
        matched = oracle_matches(spec, oracle, held_out)
        if not both_classes(by_setting["after"]) or matched is None or matched.height < 10 or \
                matched.get_column(S.BOOLEAN_VALUE).n_unique() < 2:
            print(f"| {spec.name} | skipped: a split lacks a class or the oracle matches too few rows |||||||")
            continue
        matched = matched.sort(ROW)
        index = matched.get_column(ROW).to_numpy()
        y = matched.get_column(S.BOOLEAN_VALUE).to_numpy().astype(int)
        oracle_value = auroc(y, matched.get_column("probability").to_numpy())
        for head in heads:
            row = {"task": spec.name, "head": head, "n_held_out": held_out.height, "matched": len(index),
                   "positives": int(y.sum()), "oracle": oracle_value}
            for name in SETTINGS:
                t = time.perf_counter()
                if args.featurize_twice:
                    data = by_setting[name]
                    pipeline = fit_pipeline(spec, "counts", head, data, seed=0)
                    p = pipeline.predict_proba_features(data.matrix("counts", S.HELD_OUT))
                    width = int(data.matrix("counts", S.TRAIN).shape[1])
                else:
                    p, width = fit_sliced(by_setting["after"], head, drop=2 * (name == "before"))
                row[name] = auroc(y, p[index])
                row[f"{name}_n_features"] = width
                row[f"{name}_seconds"] = round(time.perf_counter() - t, 1)
            rows.append(row)
            if args.json:  # after every row, so an interrupted run keeps what it measured
                args.json.write_text(json.dumps(rows, indent=1))
            print(f"| {spec.name} | {row['n_held_out']} ({row['matched']}) | {row['positives']} | {head} | "
                  f"{row['before']:.3f} | {row['after']:.3f} | {oracle_value:.3f} | "
                  f"{oracle_value - row['before']:.3f} | {oracle_value - row['after']:.3f} |", flush=True)
    print()
    for head in heads:
        mine = [r for r in rows if r["head"] == head]
        if mine:
            gaps = {name: float(np.mean([r["oracle"] - r[name] for r in mine])) for name in SETTINGS}
            print(f"mean gap (oracle - model), counts/{head}, {len(mine)} tasks: before {gaps['before']:.4f}, "
                  f"after {gaps['after']:.4f} (change {gaps['after'] - gaps['before']:+.4f})")
    print(f"wall {time.perf_counter() - start:.0f} s; dataset {meds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
