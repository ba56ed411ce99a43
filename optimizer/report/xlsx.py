"""Writing finance-grade sheets with openpyxl: number formats, styles, a sheet writer that sizes
columns to what they show, and absolute references / defined names for formulas."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.errors import UsageError
from optimizer.report.safe_write import safe_write
from optimizer.units import CURRENCY_SYMBOLS

# Number formats. Money cells show the currency; quantities use thousands separators.
FMT_INT = "#,##0"
FMT_1 = "#,##0.0"
FMT_2 = "#,##0.00"
FMT_3 = "#,##0.000"
FMT_PCT = "0.0%"
FMT_PCT2 = "0.00%"
FMT_DATE = "yyyy-mm-dd"

HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")
INPUT_FONT = Font(color="0000FF")
INPUT_BOLD = Font(color="0000FF", bold=True)
BOLD = Font(bold=True)
TITLE = Font(bold=True, size=14)
SECTION = Font(bold=True, size=12)
NOTE = Font(italic=True)
THIN = Side(style="thin", color="808080")
HEADER_BORDER = Border(bottom=THIN)
TOTAL_BORDER = Border(top=THIN)

MAX_TEXT_WIDTH = 48.0   # wrap text columns beyond this many characters
MAX_HEADER_WIDTH = 11.5  # wrap header labels beyond this
LINE_HEIGHT_PT = 15.0
MIN_PRINT_SCALE = 0.75   # 11 pt text prints at 8.25 pt at the smallest
LO_WIDTH_FACTOR = 1.3    # LibreOffice prints a column this much wider than Excel's pixel rule says
WRAP_WIDTH_FACTOR = 1.1  # wrapped text: LibreOffice fits more per line than the Excel rule; Excel a little less
MARGIN_IN = 0.4          # left and right page margins, inches
A4_LONG_PT = 841.89
A4_SHORT_PT = 595.28


def money_format(currency: str, *, cents: bool = True) -> str:
    """``"€"#,##0.00`` for known currencies, ``"CHF "#,##0.00`` otherwise (``#,##0`` without cents)."""
    sym = CURRENCY_SYMBOLS.get(currency.upper())
    body = FMT_2 if cents else FMT_INT
    return f'"{sym}"{body}' if sym else f'"{currency.upper()} "{body}'


def display_text(value: Any, fmt: str | None) -> str:
    """Roughly what a spreadsheet displays for ``value`` in ``fmt`` (for column widths)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, date):
        return "2000-01-01"
    if isinstance(value, int | float):
        fmt = fmt or "General"
        literal = "".join(re.findall(r'"([^"]*)"', fmt))
        if "%" in fmt:
            decimals = fmt.split("%")[0].count("0") - 1
            return f"{value * 100:,.{max(decimals, 0)}f}%"
        body = fmt.split(";")[0]
        if "." in body:
            decimals = body.split(".")[1].count("0")
            text = f"{value:,.{decimals}f}"
        elif "0" in body:
            text = f"{value:,.0f}"
        else:
            text = f"{value:.10g}"
        return literal + text
    return str(value)


@dataclass
class Sheet:
    """A worksheet plus what it takes to size its columns and rows so nothing overflows."""

    ws: Worksheet
    widths: dict[int, float] = field(default_factory=dict)
    lines: dict[int, int] = field(default_factory=dict)
    notes: list[tuple[int, str, Font | None]] = field(default_factory=list)
    max_col: int = 1
    wrapped: list[tuple[int, int, str, float]] = field(default_factory=list)

    def put(self, row: int, col: int, value: Any, fmt: str | None = None, *, shown: Any = None,
            font: Font | None = None, wrap: bool = False, fill: PatternFill | None = None,
            border: Border | None = None, align: str | None = None, width: bool = True,
            cap: float = 0.0) -> Cell:
        cell = self.ws.cell(row=row, column=col, value=value)
        if fmt:
            cell.number_format = fmt
        if font is not None:
            cell.font = font
        if fill is not None:
            cell.fill = fill
        if border is not None:
            cell.border = border
        text = display_text(shown if shown is not None else value, fmt)
        if isinstance(value, str) and value.startswith("=") and shown is None:
            text = ""
        bold = bool(font is not None and font.b)
        scale = 1.15 if bold else 1.0
        indent = 1 if isinstance(value, str) and not value.startswith("=") and align is None else 0
        need = len(text) * scale + 2.0 + 1.5 * indent
        if wrap or "\n" in text:
            need = min(need, cap or MAX_TEXT_WIDTH)
            cell.alignment = Alignment(wrap_text=True, vertical="top", horizontal=align or ("left" if indent else None),
                                       indent=indent)
            self.wrapped.append((row, col, text, scale))  # row heights are set at finish
        else:
            cell.alignment = Alignment(vertical="top", horizontal=align or ("left" if indent else None),
                                       indent=indent)
        if width:
            self.widths[col] = max(self.widths.get(col, 0.0), need)
        self.max_col = max(self.max_col, col)
        return cell

    def header(self, row: int, labels: Sequence[str], col: int = 1) -> None:
        for i, label in enumerate(labels):
            c = self.ws.cell(row=row, column=col + i, value=label)
            c.font = BOLD
            c.fill = HEADER_FILL
            c.border = HEADER_BORDER
            c.alignment = Alignment(wrap_text=True, vertical="bottom", horizontal="center")
            longest_word = max((len(w) for w in label.split()), default=0)
            need = max(min(len(label) * 1.15 + 2.0, MAX_HEADER_WIDTH), longest_word * 1.15 + 2.0)
            self.widths[col + i] = max(self.widths.get(col + i, 0.0), need)
            self.wrapped.append((row, col + i, label, 1.15))
        self.max_col = max(self.max_col, col + len(labels) - 1)

    def title(self, row: int, text: str, font: Font = TITLE) -> None:
        """A title or note spanning the sheet's table width (merged and wrapped at finish)."""
        self.notes.append((row, text, font))

    def finish(self, *, header_row: int | None, landscape: bool = True, footer: str = "",
               title_cols: str | None = "A:A") -> None:
        """Column widths, row heights, merged notes and the page set-up.

        Printing never shrinks text below :data:`MIN_PRINT_SCALE` (11 pt x 0.8 = 8.8 pt): a sheet
        whose columns fit the page width at that scale is fitted to one page wide; a wider one prints
        at that scale and runs several pages wide, repeating ``title_cols`` (the row labels) on each.
        """
        ws = self.ws
        for col in range(1, self.max_col + 1):
            ws.column_dimensions[get_column_letter(col)].width = round(max(self.widths.get(col, 8.0), 6.0), 1)
        widths = {c: ws.column_dimensions[get_column_letter(c)].width for c in range(1, self.max_col + 1)}
        for row, col, text, scale in self.wrapped:
            usable = max(widths[col] - 1.5, 1.0) * WRAP_WIDTH_FACTOR
            n = sum(max(1, math.ceil(text_width(part, scale) / usable)) for part in text.split("\n"))
            self.lines[row] = max(self.lines.get(row, 1), n)
        one_page = fit_scale(widths.values(), landscape=landscape) >= MIN_PRINT_SCALE
        # notes span the table, or on a sheet that prints several pages wide the first page's columns
        span = self.max_col if one_page else max(1, first_page_columns(list(widths.values()), landscape=landscape))
        total = sum(widths[c] for c in range(1, span + 1))
        for row, text, font in self.notes:
            cell = ws.cell(row=row, column=1, value=text)
            cell.font = font or Font()
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            if span > 1:
                ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=span)
            size = (font.sz if font is not None and font.sz else 11.0) or 11.0
            scale = size / 11.0 * (1.15 if font is not None and font.b else 1.0)
            n = max(1, math.ceil(text_width(text, scale) / max((total - 2.0) * WRAP_WIDTH_FACTOR, 1.0)))
            ws.row_dimensions[row].height = n * LINE_HEIGHT_PT * size / 11.0 + 3
        for row, n in self.lines.items():
            if n > 1 and row not in {r for r, _, _ in self.notes}:
                ws.row_dimensions[row].height = n * LINE_HEIGHT_PT + 2
        if header_row is not None:
            ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
            ws.print_title_rows = f"{header_row}:{header_row}"
        ws.page_setup.orientation = "landscape" if landscape else "portrait"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.print_options.horizontalCentered = False
        ws.page_margins.left = ws.page_margins.right = MARGIN_IN
        if one_page:
            ws.page_setup.fitToWidth = 1
            ws.page_setup.fitToHeight = 0
            ws.sheet_properties.pageSetUpPr.fitToPage = True
        else:
            ws.sheet_properties.pageSetUpPr.fitToPage = False
            ws.page_setup.scale = math.ceil(MIN_PRINT_SCALE * 100)
            if title_cols:
                ws.print_title_cols = title_cols
        ws.page_margins.top = ws.page_margins.bottom = 0.6
        ws.page_margins.header = ws.page_margins.footer = 0.3
        ws.oddHeader.center.text = "&A"
        ws.oddFooter.left.text = hf_escape(footer)
        ws.oddFooter.right.text = "Page &P of &N"


def fit_scale(widths: Iterable[float], *, landscape: bool = True) -> float:
    """The print scale at which columns of these widths (character units) fill one A4 page width.

    A column of width w is ``trunc(7 w + 5)`` pixels at 96 dpi (Calibri 11's 7-pixel digit), i.e.
    0.75 pt per pixel, in Excel; LibreOffice (Carlito) prints it about 1.3 times wider (measured on
    this workbook's sheets: fitted scales 0.77 of this rule's). The printable width is the paper less
    the left and right margins.
    """
    total_pt = sum(math.trunc(7 * w + 5) * 0.75 * LO_WIDTH_FACTOR for w in widths)
    paper_pt = A4_LONG_PT if landscape else A4_SHORT_PT
    return (paper_pt - 2 * MARGIN_IN * 72) / max(total_pt, 1.0)


def first_page_columns(widths: list[float], *, landscape: bool = True) -> int:
    """How many leading columns fit on one page width at :data:`MIN_PRINT_SCALE`."""
    n = 0
    while n < len(widths) and fit_scale(widths[:n + 1], landscape=landscape) >= MIN_PRINT_SCALE:
        n += 1
    return n


def chart_fonts(chart: Any, size_pt: float = 13.0) -> None:
    """Axis labels of ``chart`` at ``size_pt`` (LibreOffice's default, 10 pt, prints below 8 pt on a
    sheet scaled to fit)."""
    from openpyxl.chart.text import RichText
    from openpyxl.drawing.text import CharacterProperties, Paragraph, ParagraphProperties

    for axis in (chart.x_axis, chart.y_axis):
        props = CharacterProperties(sz=round(size_pt * 100))
        axis.txPr = RichText(p=[Paragraph(pPr=ParagraphProperties(defRPr=props), endParaRPr=props)])


def text_width(text: str, scale: float) -> float:
    """Approximate width of ``text`` in character units (upper case and wide glyphs count more)."""
    wide = sum(1 for ch in text if ch.isupper() or ch in "MWmw@%")
    return (len(text) + 0.15 * wide) * scale


def hf_escape(text: str) -> str:
    return text.replace("&", "&&")


def abs_ref(sheet: str, col: int, row: int) -> str:
    return f"{quote_sheetname(sheet)}!${get_column_letter(col)}${row}"


def range_ref(sheet: str, col: int, first: int, last: int) -> str:
    letter = get_column_letter(col)
    return f"{quote_sheetname(sheet)}!${letter}${first}:${letter}${last}"


def define_name(wb: Workbook, name: str, sheet: str, col: int, row: int) -> str:
    wb.defined_names[name] = DefinedName(name, attr_text=abs_ref(sheet, col, row))
    return name




def save_workbook(wb: Workbook, path: Path, *, force: bool = False) -> Path:
    """Save ``wb`` safely (temporary file + rename); UsageError when it cannot."""
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise UsageError(f"workbook path {path} must end in .xlsx", hint=f"use {path.with_suffix('.xlsx')}")
    return safe_write(path, lambda tmp: wb.save(tmp), force=force, what="workbook")
