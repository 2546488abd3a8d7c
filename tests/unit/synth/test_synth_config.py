from __future__ import annotations

from pathlib import Path

import pytest

from ehrpredict.errors import ConfigError
from ehrpredict.ingest.synth import SynthConfig, generate, parse_modules


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_patients_is_a_config_error(n: int) -> None:
    with pytest.raises(ConfigError, match="expected a positive number of patients"):
        SynthConfig(n_patients=n)


def test_unknown_module_is_named() -> None:
    with pytest.raises(ConfigError, match="got xray"):
        SynthConfig(n_patients=5, modules=parse_modules("hosp,xray"))


def test_hosp_is_required() -> None:
    with pytest.raises(ConfigError, match="include hosp"):
        SynthConfig(n_patients=5, modules=("icu",))


def test_modules_are_put_in_canonical_order() -> None:
    assert SynthConfig(n_patients=5, modules=parse_modules(" note, hosp ")).modules == ("hosp", "note")


def test_non_empty_out_dir_is_refused_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="--overwrite"):
        generate(tmp_path, SynthConfig(n_patients=3))
    assert (tmp_path / "keep.txt").exists()
    generate(tmp_path, SynthConfig(n_patients=3), overwrite=True)
    assert not (tmp_path / "keep.txt").exists()
    assert (tmp_path / "hosp" / "patients.csv.gz").exists()


def test_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="expected a writable location"):
        generate(blocker / "out", SynthConfig(n_patients=3))


def test_no_partial_output_is_left_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ehrpredict.ingest.synth as synth

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash mid-way")

    monkeypatch.setattr(synth, "_write_chunk", boom)
    with pytest.raises(RuntimeError):
        generate(tmp_path / "out", SynthConfig(n_patients=3))
    assert list(tmp_path.iterdir()) == []
