"""Rows of a delimited price file with the position of every field, for errors that name file,
line and column."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

from bessai.errors import DataError


class Table:
    """Rows of a delimited file with the position of every field, for precise errors."""

    def __init__(self, path: Path, delimiter: str) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read price file: {exc}") from exc
        lines = text.splitlines()
        if not lines:
            raise DataError(f"{path}:1: price file is empty")
        self.delimiter = delimiter
        self.header = next(csv.reader([lines[0]], delimiter=delimiter))
        self._lines = lines

    def column(self, name: str) -> int:
        try:
            return self.header.index(name)
        except ValueError:
            raise DataError(
                f"{self.path}:1: no column {name!r}; columns are {', '.join(self.header)}"
            ) from None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self._lines[1:], delimiter=self.delimiter)
        for offset, row in enumerate(reader):
            line = offset + 2
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(self.header):
                raise DataError(
                    f"{self.path}:{line}: expected {len(self.header)} fields, found {len(row)}"
                )
            yield line, row

    def error(self, line: int, col: int, what: str) -> DataError:
        return DataError(f"{self.path}:{line}:{col + 1}: {what} (column {self.header[col]!r})")

    def number(self, line: int, col: int, text: str, *, decimal_comma: bool = False) -> float:
        raw = text.strip()
        if decimal_comma:
            raw = raw.replace(".", "").replace(",", ".") if "," in raw else raw
        try:
            value = float(raw)
        except ValueError:
            raise self.error(line, col, f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise self.error(line, col, f"{text!r} is not a finite number")
        return value
