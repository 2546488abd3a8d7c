"""The audit log: every prediction the service made, in a SQLite file (WAL mode).

One row per scoring request: when (UTC), which key, which endpoint, model and version, the sha256 of
the request body, the HTTP status, the outputs (probability, decision, prediction; no identifiers) and
the latency. Events, notes and subject ids are never written: the input's hash lets an auditor who
holds the input prove which request it was, without the log holding the record itself.

    >>> log = AuditLog(":memory:")
    >>> log.record(AuditRecord("k1", "/v1/models/m/predict", "m", "v1", "ab" * 32, 200, '{"p": 0.3}', 4.2))
    >>> log.count()
    1
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_utc TEXT NOT NULL,
    key_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT,
    model_version TEXT,
    input_sha256 TEXT NOT NULL,
    status INTEGER NOT NULL,
    output TEXT,
    latency_ms REAL NOT NULL
)
"""


@dataclass(frozen=True)
class AuditRecord:
    key_id: str
    endpoint: str
    model: str | None
    model_version: str | None
    input_sha256: str
    status: int
    output: str | None  # JSON: probabilities and decisions only
    latency_ms: float


class AuditLog:
    """Append-only prediction log. One connection guarded by a lock: requests run on several threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if self.path != ":memory:" and str(mode).lower() != "wal":
            raise RuntimeError(f"expected SQLite to use WAL mode for {self.path}, got {mode}")
        # NORMAL in WAL mode: a committed row survives a crash of the process; a power loss may lose the
        # last few, never corrupt the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")  # several worker processes may write at once
        self._db.execute(_SCHEMA)

    def record(self, r: AuditRecord) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._lock:
            self._db.execute(
                "INSERT INTO predictions (time_utc, key_id, endpoint, model, model_version, input_sha256, status, "
                "output, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, r.key_id, r.endpoint, r.model, r.model_version, r.input_sha256, r.status, r.output,
                 round(r.latency_ms, 3)))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM predictions ORDER BY id DESC LIMIT ?", (limit,))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
