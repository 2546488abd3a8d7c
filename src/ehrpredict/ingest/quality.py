"""The data-quality report: per source table, rows read, events written, rows quarantined by reason,
rows flagged by reason and typed fields that did not parse, by field.

Invariant checked by the tests: ``rows_read == rows_used + rows_quarantined`` for every table, so every
source row is either turned into events or quarantined with a reason. Flagged rows are among the rows
used: they are kept, with their problem recorded in ``flagged.parquet``. A row can carry several flags,
so ``flagged_by_reason`` counts flag records (one per row and flag) and ``rows_flagged`` counts rows.
``unparseable_by_field`` counts every present-but-unparseable value of a typed field, whether its row was
then quarantined or kept and flagged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TableReport:
    """Accumulates counts for one source table while it streams."""

    table: str
    file: str
    rows_read: int = 0
    events_written: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    rows_flagged: int = 0
    flagged: Counter[str] = field(default_factory=Counter)
    unparseable: Counter[str] = field(default_factory=Counter)

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined.values())

    @property
    def rows_used(self) -> int:
        return self.rows_read - self.rows_quarantined

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "rows_quarantined": self.rows_quarantined,
            "rows_flagged": self.rows_flagged,
            "events_written": self.events_written,
            "quarantined_by_reason": dict(sorted(self.quarantined.items())),
            "flagged_by_reason": dict(sorted(self.flagged.items())),
            "unparseable_by_field": dict(sorted(self.unparseable.items())),
        }


@dataclass
class QualityReport:
    source: str
    tables: dict[str, TableReport] = field(default_factory=dict)
    not_mapped: dict[str, str] = field(default_factory=dict)
    unrecognized_files: list[str] = field(default_factory=list)
    missing_optional_tables: list[str] = field(default_factory=list)
    n_subjects: int = 0
    n_events: int = 0

    def to_json(self) -> dict[str, Any]:
        tables = [t for t in self.tables.values()]
        return {
            "source": self.source,
            "n_subjects": self.n_subjects,
            "n_events": self.n_events,
            "totals": {
                "rows_read": sum(t.rows_read for t in tables),
                "rows_used": sum(t.rows_used for t in tables),
                "rows_quarantined": sum(t.rows_quarantined for t in tables),
                "rows_flagged": sum(t.rows_flagged for t in tables),
                "events_written": sum(t.events_written for t in tables),
            },
            "tables": {name: t.to_json() for name, t in self.tables.items()},
            "tables_not_mapped": dict(sorted(self.not_mapped.items())),
            "missing_optional_tables": sorted(self.missing_optional_tables),
            "unrecognized_files": sorted(self.unrecognized_files),
        }

    def summary(self) -> str:
        return self.summary_from_json(self.to_json())

    @staticmethod
    def summary_from_json(report: dict[str, Any]) -> str:
        """A short table for the terminal, from a report as written to data_quality.json."""
        lines = [f"{'table':<28}{'rows read':>12}{'quarantined':>13}{'flagged':>10}{'events':>12}"]
        for name, t in report["tables"].items():
            lines.append(
                f"{name:<28}{t['rows_read']:>12,}{t['rows_quarantined']:>13,}"
                f"{t['rows_flagged']:>10,}{t['events_written']:>12,}"
            )
            for reason, n in t["quarantined_by_reason"].items():
                lines.append(f"    {n:>10,}  {reason}")
            for reason, n in t["flagged_by_reason"].items():
                lines.append(f"    {n:>10,}  flagged: {reason}")
        total = report["totals"]
        lines.append(
            f"{'total':<28}{total['rows_read']:>12,}{total['rows_quarantined']:>13,}"
            f"{total['rows_flagged']:>10,}{total['events_written']:>12,}"
        )
        if report["tables_not_mapped"]:
            lines.append(f"not mapped: {', '.join(report['tables_not_mapped'])} (reasons in the report)")
        if report["unrecognized_files"]:
            lines.append(f"unrecognized files (ignored): {', '.join(report['unrecognized_files'])}")
        return "\n".join(lines)
