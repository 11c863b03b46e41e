"""Report helpers: fixed-width text tables for terminals and JSON for metric results.

Numbers are formatted for reading, not for re-parsing (use :func:`metrics_to_json` for
that): floats with 4 significant decimals (``0.1234``; large or tiny values in ``%.4g``),
``None``/NaN as ``-``, booleans as ``yes``/``no``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..io.atomic import atomic_write_bytes, to_jsonable

__all__ = ["format_value", "format_table", "to_jsonable", "metrics_to_json"]

log = logging.getLogger(__name__)


def format_value(value: Any) -> str:
    """One table cell: ``None``/NaN -> ``-``, floats ``%.4f`` (``%.4g`` outside [1e-3, 1e5))."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            return "-"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        if f == 0.0 or 1e-3 <= abs(f) < 1e5:
            return f"{f:.4f}"
        return f"{f:.4g}"
    return str(value)


def _is_numeric(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float, np.integer, np.floating))
                             and not isinstance(value, (bool, np.bool_)))


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A fixed-width text table: a header, a rule, one line per row (no trailing newline).

    ``columns`` picks and orders the keys of each row (a missing key shows ``-``). Numeric
    columns are right-aligned, others left-aligned; each column is as wide as its widest
    cell. Raises ``ValueError`` when ``columns`` is empty.
    """
    if not columns:
        raise ValueError("format_table: no columns")
    cells = [[format_value(r.get(c)) for c in columns] for r in rows]
    numeric = [all(_is_numeric(r.get(c)) for r in rows) and any(r.get(c) is not None for r in rows)
               for c in columns]
    widths = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)


def metrics_to_json(results: Any, path: str | Path | None = None, *, indent: int = 2) -> str:
    """Serialise metric results to a JSON string, and write it to ``path`` when given.

    ``results`` may be a :class:`~steadydepth.eval.metrics.DepthMetrics`, a dict, a list of
    them, ... (see :func:`to_jsonable`; NaN/inf become ``null``). The file is written
    atomically (:mod:`steadydepth.io.atomic`), its folder created if needed; raises
    :class:`OutputError` when it cannot be written.
    """
    text = json.dumps(to_jsonable(results), indent=indent, allow_nan=False)
    if path is not None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write metrics to {path}: {exc}") from exc
        atomic_write_bytes(path, (text + "\n").encode("utf-8"))
        log.info("wrote metrics to %s", path)
    return text
