"""render_report on a hand-built report shaped like the one `ehrpredict benchmark` writes (its
report.json, read with BenchmarkReport.from_json)."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from ehrpredict.evaluation.curves import binary_curves
from ehrpredict.experiments.results import BenchmarkReport
from ehrpredict.reporting.html import render_report

# The page evaluation/html.py rendered from make_report() before the layout moved to reporting/ and
# read typed reports (commit 91f859c). A layout changed on purpose regenerates it, from the repository:
#   PYTHONPATH=src:tests/unit/reporting python -c \
#       "import test_html as t; t.EXPECTED.write_text(t.render(t.make_report()))"
EXPECTED = Path(__file__).with_name("expected_page.html")


def est(value: float | None, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"value": value, "ci_low": low, "ci_high": high}


def binary_metrics(auroc: float) -> dict[str, Any]:
    return {"n": 40, "n_patients": 30, "prevalence": 0.25, "threshold": 0.3,
            "auroc": est(auroc, auroc - 0.08, min(1.0, auroc + 0.06)), "auprc": est(0.55, 0.4, 0.7),
            "brier": est(0.15, 0.12, 0.18), "ece": est(0.05, 0.03, 0.09), "calibration_slope": est(1.0, 0.8, 1.2),
            "calibration_intercept": est(0.0, -0.2, 0.2), "sensitivity": est(0.7), "specificity": est(0.8),
            "ppv": est(0.5), "npv": est(0.9), "n_boot": 20, "n_boot_degenerate": 0, "seed": 0}


Y = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
P_GOOD = [0.05, 0.1, 0.2, 0.3, 0.35, 0.6, 0.4, 0.7, 0.8, 0.95]
P_WEAK = [0.3, 0.5, 0.2, 0.6, 0.4, 0.7, 0.35, 0.55, 0.45, 0.8]
TEXT = {"serializer": {"format": "markdown", "include_notes": True}, "dimension": 384,
        "encoder": "sentence-transformers|model=all-MiniLM-L6-v2|instruction=''|max_tokens=model",
        "n_texts": 1234, "unique_texts": 1230, "cache_hits": 1200, "embedded": 34, "chunks": 2,
        "embed_seconds": 5.123, "truncated_texts": 12}


def few_shot(means: list[float]) -> dict[str, Any]:
    curve: dict[str, Any] = {str(2**i): {"status": "done", "auroc_mean": m, "auroc_sd": 0.04,
                                         "auroc_replicates": [m] * 5} for i, m in enumerate(means)}
    curve[str(2 ** len(means))] = {"status": f"fewer than {2 ** len(means)} positives or negatives in train or tuning"}
    return curve


def subgroups(auroc: float) -> dict[str, Any]:
    return {
        "sex": {"F": {"n": 22, "positives": 6, "status": "done", "metrics": binary_metrics(auroc)},
                "M": {"n": 16, "positives": 4, "status": "done", "metrics": binary_metrics(auroc - 0.1)},
                "unknown": {"n": 2, "positives": 0, "status": "too few to evaluate"}},
        "race": {"<b>odd</b>": {"n": 40, "positives": 10, "status": "done", "metrics": binary_metrics(auroc)}},
    }


def shuffled(name: str, replicates: list[float]) -> dict[str, Any]:
    """The label-shuffle control as the benchmark writes it: mean, SD and range over permutations."""
    mean = sum(replicates) / len(replicates)
    return {"permutations": len(replicates), name: {"value": mean, "sd": 0.05, "min": min(replicates),
                                                     "max": max(replicates), "replicates": replicates}}


def binary_model(representation: str, head: str, p: list[float], auroc: float, text: Any) -> dict[str, Any]:
    return {"representation": representation, "head": head, "n_features": 321, "metrics": binary_metrics(auroc),
            "label_shuffle_control": shuffled("auroc", [0.45, 0.5, 0.55]), "curves": binary_curves(Y, p),
            "subgroups": subgroups(auroc), "few_shot": few_shot([0.55, 0.6, 0.68]),
            "featurize_seconds": 0.52, "text": text, "seconds": 2.34}


def regression_metrics(r2: float) -> dict[str, Any]:
    return {"n": 40, "n_patients": 30, "mean": 4.2, "mae": est(1.9, 1.5, 2.3), "rmse": est(2.8, 2.2, 3.4),
            "r2": est(r2, r2 - 0.1, r2 + 0.1), "n_boot": 20, "seed": 0}


def make_report() -> dict[str, Any]:
    splits = {name: {"n": n, "positives": n // 4, "prevalence": 0.25}
              for name, n in (("train", 1200), ("tuning", 150), ("held_out", 40))}
    binary = {
        "task": "sepsis <48h> & co", "status": "done", "reason": "", "splits": splits, "seconds": 9.1,
        "models": [binary_model("counts", "lr", P_GOOD, 0.82, None),
                   binary_model("counts+text", "lgbm", P_WEAK, 0.64, TEXT)],
        "comparisons": [{"a": "counts+text/lgbm", "b": "counts/lr", "delta_auroc": -0.18, "ci": [-0.3, -0.05],
                         "p_value": 0.01, "n_boot": 199, "p_value_holm": 0.02}],
        "oracle": {"status": "done", "matched": 10, "of": 40, "metrics": binary_metrics(0.9),
                   "curves": binary_curves(Y, [0.01, 0.02, 0.1, 0.2, 0.3, 0.45, 0.5, 0.8, 0.9, 0.99])},
    }
    regression = {
        "task": "length_of_stay_days", "status": "done", "reason": "", "seconds": 3.0, "comparisons": [],
        "oracle": None, "splits": {name: {"n": n, "mean": 4.2, "sd": 3.1}
                                   for name, n in (("train", 900), ("tuning", 100), ("held_out", 100))},
        "models": [{"representation": "text", "head": "lr", "n_features": 384,
                    "regression_metrics": regression_metrics(0.31),
                    "label_shuffle_control": shuffled("r2", [-0.05, -0.01, 0.0]),
                    "featurize_seconds": 7.0, "text": TEXT, "seconds": 1.25}],
    }
    multilabel = {
        "task": "discharge_diagnoses_icd10", "status": "done", "reason": "", "seconds": 2.0, "comparisons": [],
        "oracle": None, "splits": {name: {"n": 50, "categories": 12, "prevalence": 0.0}
                                   for name in ("train", "tuning", "held_out")},
        "models": [{"representation": "counts", "head": "lr (one-vs-rest)", "n_features": 200, "categories": 12,
                    "multilabel_metrics": {"n": 50, "n_labels": 12, "labels_present": 9, "micro_f1": 0.41,
                                           "macro_f1": 0.22, "precision_at_k": 0.3, "k": 5,
                                           "mean_average_precision": 0.35}}],
    }
    skipped = {"task": "time_to_death", "status": "skipped", "reason": "time_to_event tasks are not benchmarked yet",
               "splits": {}, "models": [], "comparisons": [], "oracle": None, "seconds": 0.0}
    return {"ehrpredict_version": "0.1.0", "created_by": "ehrpredict benchmark",
            "config": {"seed": 0, "n_boot": 20, "dataset": "/data/meds"},
            "dataset": {"path": "/data/meds", "fingerprint": "0123456789abcdef"}, "environment": {},
            "seconds": 12.3, "tasks": [binary, regression, multilabel, skipped]}


def render(report: dict[str, Any]) -> str:
    return render_report(BenchmarkReport.from_json(report))


@pytest.fixture(scope="module")
def page() -> str:
    return render(make_report())


def test_the_page_is_the_one_the_untyped_renderer_drew(page: str) -> None:
    assert page == EXPECTED.read_text()


def svgs(page: str) -> dict[str, ET.Element]:
    """Every <svg> of the page parsed as XML (so unescaped text would fail), keyed by its aria-label."""
    out = {}
    for match in re.finditer(r"<svg .*?</svg>", page, flags=re.DOTALL):
        element = ET.fromstring(match.group(0))
        out[element.attrib["aria-label"]] = element
    return out


def test_one_svg_per_plot_kind(page: str) -> None:
    labels = set(svgs(page))
    task = "sepsis <48h> & co"
    assert labels == {f"{task}: roc", f"{task}: pr", f"{task}: calibration", f"{task}: few-shot AUROC",
                      f"{task}: AUROC by sex", f"{task}: AUROC by race"}
    assert page.count("<figcaption>") == len(labels)  # every plot is explained


def test_each_model_gets_a_line_and_the_oracle_a_dashed_one(page: str) -> None:
    roc = svgs(page)["sepsis <48h> & co: roc"]
    lines = roc.findall("polyline")
    assert [line.findtext("title") for line in lines] == ["counts/lr", "counts+text/lgbm", "oracle"]
    assert lines[2].attrib["stroke"] == "#000000" and "stroke-dasharray" in lines[2].attrib
    assert "stroke-dasharray" not in lines[0].attrib
    width, height = int(roc.attrib["width"]), int(roc.attrib["height"])
    for line in lines:
        for point in line.attrib["points"].split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= width and 0 <= y <= height
    few_shot = svgs(page)["sepsis <48h> & co: few-shot AUROC"]
    assert len(few_shot.findall("polyline")) == 2 and len(few_shot.findall("circle")) == 6  # 3 k per model
    assert [t.text for t in few_shot.findall("text")][:3] == ["1", "2", "4"]  # k=8 was not done


def test_forest_plot_skips_subgroups_without_metrics(page: str) -> None:
    forest = svgs(page)["sepsis <48h> & co: AUROC by sex"]
    labels = [t.text for t in forest.findall("text")]
    assert "F (n=22)" in labels and "M (n=16)" in labels
    assert not any(label and label.startswith("unknown") for label in labels)
    assert len(forest.findall("circle")) == 4  # two subgroups × two models
    assert "<b>odd</b> (n=40)" in [t.text for t in svgs(page)["sepsis <48h> & co: AUROC by race"].findall("text")]


def test_page_is_self_contained_and_escaped(page: str) -> None:
    assert "<script" not in page and 'src="http' not in page and 'href="http' not in page
    assert "http" not in page  # not even the SVG namespace: inline SVG in HTML needs none
    assert "sepsis &lt;48h&gt; &amp; co" in page and "<48h>" not in page
    assert "<b>odd</b>" not in page and "&lt;b&gt;odd&lt;/b&gt;" in page


def test_tables_for_binary_regression_multilabel_and_skipped_tasks(page: str) -> None:
    assert "train: n=1,200, 300 positives, prevalence 0.250" in page
    assert "0.820 <span class=muted>(0.740–0.880)</span>" in page and "0.52 / 2.34" not in page
    assert "<td>0.5 / 2.3</td>" in page  # featurize s / train+eval s
    assert "<td>0.500 <span class=muted>(0.450 to 0.550, 3 permutations)</span></td>" in page  # label shuffle
    assert "ΔAUROC" in page and "−0.180" not in page and "-0.180" in page
    # regression: splits with mean and SD, MAE/RMSE/R² with CIs, the shuffled-label R²
    assert "held_out: n=100, mean 4.2 (SD 3.1)" in page
    assert "<th>MAE (95% CI)</th>" in page and "1.900 <span class=muted>(1.500–2.300)</span>" in page
    assert "0.310 <span class=muted>(0.210–0.410)</span>" in page
    assert "<td>-0.020 <span class=muted>(-0.050 to 0.000, 3 permutations)</span></td>" in page
    # multilabel and skipped
    assert "micro-F1" in page and "12 categories (≥ 5 train cases), 9 present in held-out" in page
    assert "held_out: n=50, 12 categories" in page
    assert "skipped: time_to_event tasks are not benchmarked yet" in page
    assert "Few-shot: mean (SD) AUROC" in page and "<details><summary>subgroups</summary>" in page


def test_a_p_value_at_the_bootstrap_floor_reads_as_a_bound() -> None:
    report = make_report()
    comparison = report["tasks"][0]["comparisons"][0]
    # 199 resamples: the floor 2 / (199 + 1) = 0.010; 0.0421 is above it
    report["tasks"][0]["comparisons"] = [{**comparison, "p_value": 0.01, "n_boot": 199, "p_value_holm": 0.02},
                                         {**comparison, "p_value": 0.0421, "n_boot": 199, "p_value_holm": 0.0421}]
    page = render(report)
    assert "<td>&lt; 0.010</td><td>0.020</td>" in page
    assert "<td>0.042</td><td>0.042</td>" in page
    assert "min(1, 2(k+1)/(B+1))" in page and "(B = 199)" in page


def test_text_models_get_one_line_on_their_embedding_run(page: str) -> None:
    line = ("encoder sentence-transformers all-MiniLM-L6-v2 (384-d), markdown timelines, 1,234 texts, "
            "1,200 cache hits, 34 embedded in 5.1 s, 12 truncated")
    assert f"text (counts+text/lgbm): {line}" in page
    assert f"text (text/lr): {line}" in page
    assert "text (counts/lr)" not in page


def test_text_line_names_the_encoder_by_its_label() -> None:
    report = make_report()
    label = "all-MiniLM-L6-v2 (sentence-transformers, fingerprint 0123456789abcdef)"
    for model in report["tasks"][0]["models"]:
        if model["text"]:
            model["text"] = {**TEXT, "encoder": "sentence-transformers|model=model@0123456789abcdef|instruction=''",
                             "encoder_label": label}
    page = render(report)
    assert f"text (counts+text/lgbm): encoder {label}, 384-d, markdown timelines, 1,234 texts" in page
    assert "model@" not in page


def test_a_report_without_curves_few_shot_or_text_still_renders_its_tables() -> None:
    report = make_report()
    binary = report["tasks"][0]
    for model in binary["models"]:
        model["curves"], model["few_shot"], model["text"] = None, None, None
    del binary["oracle"]["curves"]
    page = render(report)
    assert set(svgs(page)) == {"sepsis <48h> & co: AUROC by sex", "sepsis <48h> & co: AUROC by race"}
    assert "0.820 <span class=muted>" in page and "<td>0.5 / 2.3</td>" in page
    assert "Few-shot" not in page and "text (counts+text/lgbm)" not in page


def test_oracle_without_curves_draws_only_the_models() -> None:
    report = make_report()
    del report["tasks"][0]["oracle"]["curves"]
    roc = svgs(render(report))["sepsis <48h> & co: roc"]
    assert [line.findtext("title") for line in roc.findall("polyline")] == ["counts/lr", "counts+text/lgbm"]
