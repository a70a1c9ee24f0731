"""The catalogue as a CSV file, for editing many products in a spreadsheet.

Columns (line 1, in any order): slug,title,category,price,member_price,stock,
per_member_limit,starts_at,ends_at,members_only,status. Prices in yuan ("12.80"), times in
Asia/Shanghai ("2026-11-21 20:00"), an empty stock is unlimited, members_only is 1/0 (true/
false and 是/否 are read too). The export is UTF-8 with a BOM, so that Excel reads Chinese;
the import takes UTF-8 with or without one (GB18030, what Excel in China saves by default,
too).

An import creates or updates products by slug through `shop.products`, so the form and the
file follow the same rules, and it is all or nothing: one bad line, and nothing changes; every
bad line is reported with its number. A live product's stock can only be raised by import.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select

from app import csv_bytes, db, write_transaction
from shop import checkout
from shop.models import Product
from shop.products import ProductDraft, ProductError, apply_product, draft_from

COLUMNS = (
    "slug",
    "title",
    "category",
    "price",
    "member_price",
    "stock",
    "per_member_limit",
    "starts_at",
    "ends_at",
    "members_only",
    "status",
)
MAX_BYTES = 1024 * 1024
MAX_ROWS = 2000


class CatalogueFileError(Exception):
    """The file as a whole cannot be read (too big, not text, too many lines)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        text = f"新增 {self.created} 件，更新 {self.updated} 件"
        if self.unchanged:
            text += f"，{self.unchanged} 件没有变化"
        return text + "。"


class _Rollback(Exception):
    pass


# --- export -------------------------------------------------------------------------------


def row_of(product: Product) -> list[str]:
    draft = draft_from(product)
    return [
        draft.slug,
        draft.title,
        draft.category,
        draft.price,
        draft.member_price,
        draft.stock,
        draft.per_member_limit,
        draft.starts_at,
        draft.ends_at,
        draft.members_only,
        draft.status,
    ]


def export_catalogue() -> bytes:
    """Every product, oldest first, as CSV in UTF-8 with a BOM."""
    products = db.session.scalars(select(Product).order_by(Product.id))
    return csv_bytes(COLUMNS, (row_of(product) for product in products))


# --- import -------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """The text of an uploaded CSV: UTF-8 (with or without a BOM), or else GB18030."""
    if len(data) > MAX_BYTES:
        raise CatalogueFileError("文件不能超过 1 MB，请分批导入。")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise CatalogueFileError(
            "文件不是 UTF-8 编码的 CSV：请在 Excel 里另存为「CSV UTF-8」后再导入。"
        ) from None
    if "\x00" in text:
        raise CatalogueFileError("这不是 CSV 文本文件：请在 Excel 里另存为「CSV UTF-8」。")
    return text


def read_lines(text: str) -> tuple[list[str], list[tuple[int, list[str]]], list[tuple[int, str]]]:
    """The header, the records with the line each starts on, and faults found in reading."""
    if "\x00" in text:
        raise CatalogueFileError("这不是 CSV 文本文件：请在 Excel 里另存为「CSV UTF-8」。")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    faults: list[tuple[int, str]] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error:
            faults.append((start, "这一行的引号没有配对，后面的内容无法读取。"))
            break
        if not any(cell.strip() for cell in record):
            continue  # a blank line
        records.append((start, record))
        if len(records) > MAX_ROWS + 1:
            raise CatalogueFileError(f"一次最多导入 {MAX_ROWS} 件商品，请分批导入。")
    if not records:
        raise CatalogueFileError("文件是空的：第 1 行应是表头 " + ",".join(COLUMNS) + "。")
    _, header = records.pop(0)
    return [h.strip().lower() for h in header], records, faults


def _header_fault(header: list[str]) -> str | None:
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in COLUMNS if c not in header]
    repeated = sorted({h for h in header if header.count(h) > 1})
    parts = []
    if missing:
        parts.append("缺少列 " + ",".join(missing))
    if unknown:
        parts.append("不认识的列 " + ",".join(unknown))
    if repeated:
        parts.append("重复的列 " + ",".join(repeated))
    if not parts:
        return None
    return "表头" + "；".join(parts) + "。表头应是：" + ",".join(COLUMNS)


def _message(error: ProductError) -> str:
    return "；".join(f"{name}：{message}" for name, message in error.errors.items())


def import_catalogue(data: bytes, *, actor: int | None) -> ImportReport:
    """Create or update products by slug from a CSV file; all or nothing. Raises
    CatalogueFileError when the file cannot be read at all."""
    header, records, faults = read_lines(decode(data))
    report = ImportReport(errors=list(faults))
    fault = _header_fault(header)
    if fault:
        report.errors.insert(0, (1, fault))
        return report
    checkout.release_expired_holds()  # expired holds must not block a lower stock
    try:
        with write_transaction() as session:
            seen: dict[str, int] = {}
            for line_no, record in records:
                if len(record) != len(header):
                    report.errors.append(
                        (line_no, f"这一行有 {len(record)} 列，表头有 {len(header)} 列。")
                    )
                    continue
                row = {name: value.strip() for name, value in zip(header, record, strict=True)}
                slug = row["slug"]
                if slug in seen:
                    report.errors.append((line_no, f"slug：{slug} 和第 {seen[slug]} 行重复。"))
                    continue
                seen[slug] = line_no
                product = session.scalar(select(Product).where(Product.slug == slug))
                draft = draft_from(product) if product is not None else ProductDraft()
                draft.stock_was = None  # the file says what the stock is, whatever it was
                for name in COLUMNS:
                    setattr(draft, name, row[name])
                try:
                    saved = apply_product(
                        draft,
                        product.id if product is not None else None,
                        actor=actor,
                        live_stock_may_fall=False,
                    )
                except ProductError as error:
                    report.errors.append((line_no, _message(error)))
                    continue
                if saved.created:
                    report.created += 1
                elif saved.changed:
                    report.updated += 1
                else:
                    report.unchanged += 1
            if report.errors:
                raise _Rollback
    except _Rollback:
        report.errors.sort()
        report.created = report.updated = report.unchanged = 0
    return report
