"""Enterprise economic data per month (the denominators of 亩均效益) and its import from CSV or Excel.

Monetary figures are in 10⁴ yuan (万元), as enterprise statistics report them. Stocks (land, floor area,
employees) are the month's figure; flows (output, value added, tax, R&D, revenue) the month's amount.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the import format.

    Attributes:
        key: field name (and the English header).
        zh: the Chinese header also accepted.
        unit: unit of the figure.
        required: whether a row must carry it.
        integer: whether it must be a whole number.
    """

    key: str
    zh: str
    unit: str
    required: bool = True
    integer: bool = False


#: Figures of a month, in import-column order after `enterprise` and `month`.
FIGURES: tuple[Column, ...] = (
    Column("land_area_mu", "用地面积", "亩"),
    Column("floor_area_m2", "建筑面积", "m²", required=False),
    Column("output_value_10k_yuan", "工业总产值", "万元"),
    Column("value_added_10k_yuan", "工业增加值", "万元"),
    Column("tax_paid_10k_yuan", "实缴税金", "万元"),
    Column("rd_expense_10k_yuan", "研发经费", "万元", required=False),
    Column("revenue_10k_yuan", "营业收入", "万元", required=False),
    Column("employees", "从业人员", "人", integer=True),
)
FIGURE_KEYS: tuple[str, ...] = tuple(c.key for c in FIGURES)
#: Stock figures: a period takes the last month's (land, floor) or the average (employees), never the sum.
STOCKS = frozenset({"land_area_mu", "floor_area_m2", "employees"})
HEADER_ALIASES: dict[str, str] = {"enterprise": "enterprise", "企业": "enterprise", "企业id": "enterprise",
                                  "month": "month", "月份": "month"}
for _c in FIGURES:
    HEADER_ALIASES[_c.key] = _c.key
    HEADER_ALIASES[_c.zh] = _c.key
    HEADER_ALIASES[f"{_c.zh}({_c.unit})"] = _c.key
    HEADER_ALIASES[f"{_c.zh}（{_c.unit}）"] = _c.key


@dataclass(frozen=True, slots=True)
class EconomicRecord:
    """One enterprise's figures for one month (None: not reported).

    Attributes:
        enterprise: enterprise id.
        month: `YYYY-MM`.
    """

    enterprise: str
    month: str
    land_area_mu: float
    output_value_10k_yuan: float
    value_added_10k_yuan: float
    tax_paid_10k_yuan: float
    employees: float
    floor_area_m2: float | None = None
    rd_expense_10k_yuan: float | None = None
    revenue_10k_yuan: float | None = None

    def figures(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in FIGURE_KEYS}

    @classmethod
    def of(cls, enterprise: str, month: str, figures: Mapping[str, Any]) -> EconomicRecord:
        return cls(enterprise=enterprise, month=month, **{k: figures.get(k) for k in FIGURE_KEYS})


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one cell (or row) of an import.

    Attributes:
        row: spreadsheet row number (the header is row 1).
        column: the column's header (and letter), or "" for the whole row.
        message: what is wrong and what is expected.
    """

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class ImportProblems(ValueError):
    """An import refused as a whole; `problems` names the row and column of every one."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:200])
        more = f"\n  ... and {len(problems) - 200} more" if len(problems) > 200 else ""
        super().__init__(f"{source}: {len(problems)} problem(s), nothing imported:\n{shown}{more}")


def _letter(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def _number(raw: object) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int | float):
        return float(raw)
    text = str(raw).strip().replace(",", "")
    return None if text == "" else float(text)


def _month(raw: object) -> str:
    if hasattr(raw, "year") and hasattr(raw, "month"):  # an Excel date cell
        return f"{raw.year:04d}-{raw.month:02d}"
    text = str(raw or "").strip().replace("/", "-").replace(".", "-")
    if re.fullmatch(r"\d{4}-\d", text):
        text = f"{text[:5]}0{text[5:]}"
    return text


def validate_rows(rows: Iterable[list[object]], known_enterprises: Iterable[str], source: str = "<import>"
                  ) -> list[EconomicRecord]:
    """Turn a table (first row the header) into records, or refuse it naming every bad cell.

    Args:
        rows: the table, header first; cells as read (text from CSV, typed values from Excel).
        known_enterprises: enterprise ids of the registry.
        source: file name for messages.

    Raises:
        ImportProblems: any problem; nothing is returned partially.
    """
    it = iter(rows)
    header = next(it, None)
    if header is None:
        raise ImportProblems(source, [Problem(1, "", "the file is empty; expected a header row")])
    problems: list[Problem] = []
    columns: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = str(cell or "").strip()
        key = HEADER_ALIASES.get(name) or HEADER_ALIASES.get(name.lower())
        if not name:
            continue
        if key is None:
            problems.append(Problem(1, f"{name} ({_letter(i)})", "unknown column; expected one of enterprise, "
                                    f"month, {', '.join(FIGURE_KEYS)} (or their Chinese headers)"))
        elif key in columns:
            problems.append(Problem(1, f"{name} ({_letter(i)})", f"column {key} appears twice"))
        else:
            columns[key] = i
    for key in ("enterprise", "month", *(c.key for c in FIGURES if c.required)):
        if key not in columns:
            problems.append(Problem(1, key, "required column is missing"))
    if problems:
        raise ImportProblems(source, problems)
    names = {k: f"{str(header[i]).strip()} ({_letter(i)})" for k, i in columns.items()}
    known = set(known_enterprises)
    seen: dict[tuple[str, str], int] = {}
    records: list[EconomicRecord] = []
    for row_no, row in enumerate(it, start=2):
        if all(c is None or str(c).strip() == "" for c in row):
            continue

        def cell(key: str, row: list[object] = row) -> object:
            i = columns.get(key)
            return row[i] if i is not None and i < len(row) else None

        before = len(problems)
        enterprise = str(cell("enterprise") or "").strip()
        if enterprise not in known:
            problems.append(Problem(row_no, names["enterprise"],
                                    f"enterprise {enterprise!r} is not in the registry" if enterprise
                                    else "enterprise id is empty"))
        month = _month(cell("month"))
        if not MONTH_PATTERN.match(month):
            problems.append(Problem(row_no, names["month"], f"{cell('month')!r} is not a month (YYYY-MM)"))
        values: dict[str, float | None] = {}
        for col in FIGURES:
            if col.key not in columns:
                values[col.key] = None
                continue
            raw = cell(col.key)
            try:
                value = _number(raw)
            except ValueError:
                problems.append(Problem(row_no, names[col.key], f"{raw!r} is not a number ({col.unit})"))
                continue
            if value is None:
                if col.required:
                    problems.append(Problem(row_no, names[col.key], f"empty; a figure in {col.unit} is required"))
            elif value != value or value < 0:
                problems.append(Problem(row_no, names[col.key], f"{raw!r} must be a number ≥ 0 ({col.unit})"))
            elif col.key == "land_area_mu" and value == 0:
                problems.append(Problem(row_no, names[col.key], "land area must be > 0 亩 (per-mu figures divide by it)"))
            elif col.integer and value != int(value):
                problems.append(Problem(row_no, names[col.key], f"{raw!r} must be a whole number ({col.unit})"))
            values[col.key] = value
        if len(problems) == before:
            first = seen.setdefault((enterprise, month), row_no)
            if first != row_no:
                problems.append(Problem(row_no, "", f"{enterprise} {month} was already given in row {first}"))
            else:
                records.append(EconomicRecord.of(enterprise, month, values))
    if problems:
        raise ImportProblems(source, problems)
    return records


def read_table(path: Path | str, data: bytes | None = None) -> list[list[object]]:
    """The rows of a CSV (UTF-8, with or without BOM; GBK accepted) or Excel (.xlsx, first sheet) file.

    Args:
        path: file path (its suffix decides the format).
        data: the file's bytes if already in memory (uploads); otherwise read from `path`.

    Raises:
        ImportProblems: the file cannot be read as that format.
    """
    path = Path(path)
    raw = data if data is not None else path.read_bytes()
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several unrelated types for a damaged file
            raise ImportProblems(path.name, [Problem(1, "", f"not a readable .xlsx workbook: {exc}")]) from None
        try:
            return [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
        finally:
            book.close()
    if path.suffix.lower() != ".csv":
        raise ImportProblems(path.name, [Problem(1, "", "unsupported file type; expected .csv or .xlsx")])
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise ImportProblems(path.name, [Problem(1, "", "not UTF-8 or GBK text")])
    return [list(r) for r in csv.reader(io.StringIO(text))]


def load_records(path: Path | str, known_enterprises: Iterable[str], data: bytes | None = None
                 ) -> list[EconomicRecord]:
    """Read and validate an economic-data file (see `read_table`, `validate_rows`)."""
    return validate_rows(read_table(path, data), known_enterprises, Path(path).name)


def template_header(chinese: bool = False) -> list[str]:
    """The import header row (English keys, or Chinese headers with units)."""
    if chinese:
        return ["企业", "月份", *(f"{c.zh}({c.unit})" for c in FIGURES)]
    return ["enterprise", "month", *FIGURE_KEYS]


__all__ = ["FIGURES", "FIGURE_KEYS", "STOCKS", "Column", "EconomicRecord", "ImportProblems", "Problem",
           "load_records", "read_table", "template_header", "validate_rows"]
