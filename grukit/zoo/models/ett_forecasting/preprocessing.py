"""What a user has in, as the model takes it: forecasting windows read from CSV files."""

from __future__ import annotations

import csv

import numpy as np


def read_window_csv(path, columns):
    """Rows of a CSV window as ``float32 [rows, len(columns)]``.

    With a header, the named ``columns`` are taken (in that order, others such as
    ``date`` ignored); without one, every row must hold exactly ``len(columns)``
    numbers, or one more with a leading date.

    Raises:
        ValueError: missing columns, non-numeric values (with the line number).
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: empty; expected a CSV window with columns {', '.join(columns)}.")

    def numeric(cell):
        try:
            float(cell)
            return True
        except ValueError:
            return False

    header = [c.strip() for c in rows[0]]
    if not all(numeric(c) for c in header[-len(columns):]):
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: the header lacks columns {missing}; expected "
                             f"{', '.join(columns)} (a date column is optional).")
        take, body, first = [header.index(c) for c in columns], rows[1:], 2
    else:
        width = len(rows[0])
        if width not in (len(columns), len(columns) + 1):
            raise ValueError(f"{path}: {width} fields per row; expected {len(columns)} numbers "
                             f"({', '.join(columns)}), optionally after a date.")
        take, body, first = list(range(width - len(columns), width)), rows, 1
    values = np.empty((len(body), len(columns)), np.float32)
    for i, row in enumerate(body):
        try:
            values[i] = [float(row[j]) for j in take]
        except (ValueError, IndexError):
            raise ValueError(f"{path}: line {i + first}: expected {len(columns)} numbers "
                             f"({', '.join(columns)}); got {row}.") from None
    return values
