"""Helpers of the service's tests (imported by conftest.py and the tests; a module name of its own, since
``conftest`` names several files)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ehrpredict import schema as S

TASK = "long_los_7d"


@dataclass(frozen=True)
class Keys:
    predict: str  # scopes predict
    read: str  # scopes read
    admin: str  # scopes admin
    store: Any

    def header(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, scope)}"}


def make_context(bundle_path: Path, keys: Keys, tmp_path: Path, dataset: Path | None = None, **settings: Any) -> Any:
    from ehrpredict.serve.audit import AuditLog
    from ehrpredict.serve.auth import SessionSigner
    from ehrpredict.serve.context import ServeContext, ServeSettings, load_models

    return ServeContext(load_models([bundle_path]), keys.store, AuditLog(tmp_path / "audit.sqlite"),
                        SessionSigner.from_file(None), ServeSettings(**settings), dataset=dataset)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def patient_request(hospital: Path, subject_id: int, prediction_time: Any, explain: int = 5) -> dict[str, Any]:
    """A predict request body: the subject's events from the dataset up to the prediction time."""
    events = pl.scan_parquet(hospital / S.DATA_DIR / "**" / "*.parquet").filter(
        (pl.col(S.SUBJECT_ID) == subject_id)
        & (pl.col(S.TIME).is_null() | (pl.col(S.TIME) <= prediction_time))).collect()
    rows = [{"time": r[S.TIME].isoformat() if r[S.TIME] is not None else None, "code": r[S.CODE],
             "numeric_value": r[S.NUMERIC_VALUE], "text_value": r[S.TEXT_VALUE]}
            for r in events.iter_rows(named=True)]
    return {"prediction_time": prediction_time.isoformat(), "subject_id": subject_id, "events": rows,
            "explain": explain}

