"""Task specs: the built-in library loads, and a bad spec fails with a ConfigError naming its field."""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ehrpredict.cli import main
from ehrpredict.errors import ConfigError
from ehrpredict.tasks.spec import (
    LIBRARY,
    CodeSet,
    WindowEnd,
    library_names,
    load_library,
    load_task,
    parse_duration,
    parse_task,
)

# The module docstring's example, as a mapping: every test below breaks one thing in a copy of it.
VALID: dict[str, Any] = {
    "name": "hyperkalemia_48h",
    "description": "Potassium above 5.5 mEq/L in the 48 h after admission + 24 h.",
    "label_type": "binary",
    "prediction": {"anchor": "admission", "offset": "24h"},
    "cohort": {"min_age": 18, "in_episode": True, "require_match": True},
    "outcome": {
        "window": {"end": "48h"},
        "lab": {"items": ["LAB//50971", "LAB//50822"], "unit": "mEq/L", "above": 5.5},
    },
}


def broken(**changes: Any) -> dict[str, Any]:
    """A copy of VALID with dotted keys set (``None`` deletes): ``broken(**{"outcome.window.end": None})``."""
    spec = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = spec
        for p in parents:
            node = node[p]
        if value is None:
            del node[key]
        else:
            node[key] = value
    return spec


def test_the_docstring_example_parses() -> None:
    spec = parse_task(VALID)
    assert (spec.name, spec.label_type, spec.anchor) == ("hyperkalemia_48h", "binary", "admission")
    assert spec.offset == timedelta(hours=24)
    assert spec.cohort.require_match and spec.cohort.min_age == 18.0 and not spec.cohort.exclude_died_in_episode
    (predicate,) = spec.outcome
    assert predicate.window_end == WindowEnd(offset=timedelta(hours=48))
    assert predicate.lab is not None and predicate.lab.codes().patterns == ("LAB//50971//mEq/L", "LAB//50822//mEq/L")


def test_every_builtin_task_loads_with_a_one_line_description() -> None:
    specs = load_library()
    assert len(specs) >= 18
    assert [s.name for s in specs] == library_names() == sorted(p.stem for p in LIBRARY.glob("*.yaml"))
    for spec in specs:
        assert spec.description.strip() and "\n" not in spec.description, spec.name
        assert spec.source == str(LIBRARY / f"{spec.name}.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", timedelta(minutes=30)), ("1.5h", timedelta(minutes=90)), ("7d", timedelta(days=7)),
     ("2w", timedelta(days=14)), (0, timedelta(0)), (" 24h ", timedelta(hours=24))],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text, "here") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("none", WindowEnd(unbounded=True)), ("episode_end", WindowEnd(base="episode_end")),
     ("episode_end+24h", WindowEnd(base="episode_end", offset=timedelta(hours=24))),
     ("linked_end + 1d", WindowEnd(base="linked_end", offset=timedelta(days=1))),
     ("365d", WindowEnd(offset=timedelta(days=365)))],
)
def test_window_ends(text: str, expected: WindowEnd) -> None:
    assert WindowEnd.parse(text, "here") == expected


def test_code_patterns_match_exactly_by_prefix_or_by_regex() -> None:
    codes = CodeSet.parse(["MEDS_DEATH", "ICD10CM//I50*", r"re:ICD9CM//250\.\d[02]"], "here")
    pattern = re.compile(codes.regex())
    hits = ["MEDS_DEATH", "ICD10CM//I50", "ICD10CM//I50.9", "ICD9CM//250.00", "ICD9CM//250.12"]
    misses = ["MEDS_DEATH_X", "ICD10CM//I5", "XICD10CM//I50.9", "ICD9CM//250.01", "ICD9CM//250.002"]
    assert [bool(pattern.match(c)) for c in hits + misses] == [True] * 5 + [False] * 5


def codes_outcome(codes: list[str]) -> dict[str, Any]:
    return broken(**{"outcome.lab": None, "outcome.codes": codes})


ONE_KIND = "expected exactly one of codes, lab, duration_above"
BAD_SPECS = [  # (what is wrong, the broken spec, text the error must contain)
    ("unknown top-level field", broken(labels="x"), "at task, got unknown field(s) ['labels']"),
    ("unknown cohort field", broken(**{"cohort.min_agee": 18}), "at task.cohort, got unknown field(s) ['min_agee']"),
    ("unknown lab field", broken(**{"outcome.lab.units": "x"}), "at task.outcome.lab, got unknown field(s) ['units']"),
    ("bad label_type", broken(label_type="boolean"), "expected task.label_type in"),
    ("bad anchor", broken(**{"prediction.anchor": "admit"}), "expected task.prediction.anchor in"),
    ("bad offset", broken(**{"prediction.offset": "24 hours"}), "at task.prediction.offset, got '24 hours'"),
    ("bad window end", broken(**{"outcome.window.end": "2 days"}), "at task.outcome.window.end, got '2 days'"),
    ("bad window base", broken(**{"outcome.window.end": "episode_end 24h"}), "episode_end+<duration> at task.outcome"),
    ("missing window end", broken(**{"outcome.window.end": None}), "expected field task.outcome.window.end"),
    ("missing outcome", broken(outcome=None), "expected field task.outcome"),
    ("missing name", broken(name=None), "expected field task.name"),
    ("bad name", broken(name="Hyper-K"), "task.name"),
    ("two kinds", broken(**{"outcome.codes": ["X"]}), f"{ONE_KIND} at task.outcome, got ['codes', 'lab']"),
    ("no kind", broken(**{"outcome.lab": None}), f"{ONE_KIND} at task.outcome, got none"),
    ("bad regex", codes_outcome(["re:ICD9CM//(250"]), "valid regular expression at task.outcome.codes"),
    ("empty codes", codes_outcome([]), "non-empty list of codes at task.outcome.codes"),
    ("no threshold", broken(**{"outcome.lab.above": None}), "above, below, rise_by, rise_ratio at task.outcome.lab"),
    ("text threshold", broken(**{"outcome.lab.above": "5.5"}), "a number at task.outcome.lab.above"),
    ("no unit", broken(**{"outcome.lab.unit": None}), "expected field task.outcome.lab.unit"),
    ("text flag", broken(**{"cohort.in_episode": "yes"}), "true or false at task.cohort.in_episode"),
    ("multilabel without category", broken(label_type="multilabel"), "expected task.category for a multilabel task"),
    ("bad exclusion codes", broken(**{"cohort.exclude_history": {"hf": []}}), "at task.cohort.exclude_history.hf"),
    ("not a mapping", broken(prediction="admission"), "expected a mapping at task.prediction, got str"),
    ("any_of item with two kinds",
     broken(**{"outcome.lab": None, "outcome.any_of": [{"codes": ["A"]}, {"codes": ["B"], "duration_above": "7d"}]}),
     "at task.outcome.any_of[1], got ['codes', 'duration_above']"),
]


@pytest.mark.parametrize(("raw", "message"), [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS])
def test_a_bad_spec_names_its_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_task(raw)
    assert message in str(caught.value)


def test_min_age_false_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"task\.cohort\.min_age"):
        parse_task(broken(**{"cohort.min_age": False}))


def test_a_multilabel_task_needs_codes_to_take_categories_from() -> None:
    with pytest.raises(ConfigError, match=r"task\.outcome"):  # the labeler later fails: no column "_codes0"
        parse_task(broken(label_type="multilabel", category="LAB"))


def test_a_wildcard_lab_item_is_rejected() -> None:
    # "LAB//5097*" + "//mEq/L" becomes the literal code "LAB//5097*//mEq/L": every episode would be
    # excluded for "no matching measurement" instead of the spec failing on load
    with pytest.raises(ConfigError, match=r"task\.outcome\.lab\.items"):
        parse_task(broken(**{"outcome.lab.items": ["LAB//5097*"]}))


def test_an_unknown_task_name_lists_the_builtin_tasks() -> None:
    with pytest.raises(ConfigError) as caught:
        load_task("no_such_task")
    message = str(caught.value)
    assert "got 'no_such_task'" in message
    assert all(name in message for name in library_names())


def test_a_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing path: .*nothing_here\.yaml"):
        load_task(tmp_path / "nothing_here.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\noutcome: {window: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: expected valid YAML"):
        load_task(path)


def test_a_bad_field_in_a_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(broken(**{"prediction.anchor": "icu"})))
    with pytest.raises(ConfigError, match=r"mine\.yaml: expected task\.prediction\.anchor in .*got 'icu'"):
        load_task(path)


def test_a_task_file_loads_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(VALID))
    assert load_task(path) == parse_task(VALID)  # source is not compared


def test_cli_tasks_json_lists_every_library_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in listed] == library_names()
    aki = next(t for t in listed if t["name"] == "aki_48h")
    assert aki == {"name": "aki_48h", "label_type": "binary", "anchor": "admission", "offset_hours": 24.0,
                   "description": load_task("aki_48h").description}



TIME_TO_EVENT: dict[str, Any] = {
    "name": "time_to_death",
    "description": "Days to death.",
    "label_type": "time_to_event",
    "prediction": {"anchor": "discharge", "offset": 0},
    "outcome": {"window": {"end": "none"}, "censoring": "last_discharge+365d", "codes": ["MEDS_DEATH"]},
}


def test_a_time_to_event_task_must_say_where_follow_up_ends() -> None:
    spec = parse_task(TIME_TO_EVENT)
    assert spec.censoring is not None and (spec.censoring.base, spec.censoring.offset) == (
        "last_discharge", timedelta(days=365))
    missing = copy.deepcopy(TIME_TO_EVENT)
    del missing["outcome"]["censoring"]
    with pytest.raises(ConfigError, match=r"expected task\.outcome\.censoring for a time_to_event task"):
        parse_task(missing)
    with pytest.raises(ConfigError, match=r"at task\.outcome\.censoring, got 'last_visit\+1d'"):
        parse_task({**TIME_TO_EVENT, "outcome": {**TIME_TO_EVENT["outcome"], "censoring": "last_visit+1d"}})
    with pytest.raises(ConfigError, match="only for time_to_event tasks, got a binary task"):
        parse_task(broken(**{"outcome.censoring": "last_event"}))


def test_except_codes_only_beside_codes() -> None:
    spec = parse_task({**VALID, "outcome": {"window": {"end": "30d"}, "codes": ["HOSPITAL_ADMISSION*"],
                                            "except": ["HOSPITAL_ADMISSION//ELECTIVE"]}})
    assert spec.outcome[0].except_codes == CodeSet(("HOSPITAL_ADMISSION//ELECTIVE",))
    with pytest.raises(ConfigError, match=r"task\.outcome\.except only beside task\.outcome\.codes"):
        parse_task(broken(**{"outcome.except": ["HOSPITAL_ADMISSION//ELECTIVE"]}))


def test_a_lab_baseline_is_validated() -> None:
    rise = {"items": ["LAB//50912"], "unit": "mg/dL", "rise_by": 0.3, "baseline": {"within": "48h", "stat": "min"}}
    spec = parse_task(broken(**{"outcome.lab": rise}))
    assert spec.outcome[0].lab is not None
    assert (spec.outcome[0].lab.baseline_within, spec.outcome[0].lab.baseline_stat) == (timedelta(hours=48), "min")
    with pytest.raises(ConfigError, match=r"baseline\.stat in \['last', 'min'\], got 'median'"):
        parse_task(broken(**{"outcome.lab": {**rise, "baseline": {"stat": "median"}}}))
    with pytest.raises(ConfigError, match=r"baseline only with rise_by or rise_ratio"):
        parse_task(broken(**{"outcome.lab.baseline": {"within": "7d"}}))
    with pytest.raises(ConfigError, match=r"duration like 30m, 24h or 7d at task\.outcome\.lab\.baseline\.within"):
        parse_task(broken(**{"outcome.lab": {**rise, "baseline": {"within": "a week"}}}))


def test_stay_kinds_and_competing_events_are_validated() -> None:
    spec = parse_task(broken(**{"cohort.exclude_in_stay": ["icu"],
                                "cohort.exclude_competing": {"death": ["MEDS_DEATH"]}}))
    assert spec.cohort.exclude_in_stay == ("icu",)
    assert spec.cohort.exclude_competing == (("death", CodeSet(("MEDS_DEATH",))),)
    with pytest.raises(ConfigError, match=r"from \['hospital', 'icu', 'ed'\] at task\.cohort\.exclude_in_stay"):
        parse_task(broken(**{"cohort.exclude_in_stay": ["ward"]}))
