"""The catalogue as CSV: the export (BOM, exact columns, yuan and Shanghai times), a round trip
that changes nothing, imports that create and update by slug, every bad line reported with
its number while nothing changes, the stock rules of an import, and the two commands."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import stream_encode_multipart

from app import db
from shop import catalogue_csv
from shop.catalogue_csv import COLUMNS
from shop.models import Product
from tests.conftest import DEFAULT_NOW, csrf_token_from, html
from tests.test_shop_desk import counters, make_product, paid_order, place, snapshot

HEADER = ",".join(COLUMNS)


@pytest.fixture
def editor(client, make_user, login):
    make_user("editor@example.com", role="editor")
    login("editor@example.com")
    return client


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def catalogue(app) -> dict[str, dict]:
    with app.app_context():
        ids = db.session.scalars(select(Product.id).order_by(Product.id)).all()
        return {s["slug"]: s for s in (snapshot(i) for i in ids)}


def count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Product))


def send(client, data: bytes, name: str = "catalogue.csv"):
    token = csrf_token_from(client, "/editor/shop/import")
    # Encoded in memory: the test client would spool a big body to a file it never closes.
    body, _, boundary = stream_encode_multipart(
        {"csrf_token": token, "file": FileStorage(io.BytesIO(data), name, content_type="text/csv")},
        use_tempfile=False,
    )
    return client.post(
        "/editor/shop/import",
        data=body.getvalue(),
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def lines(*rows: str, header: str = HEADER, bom: bool = True) -> bytes:
    text = "\r\n".join([header, *rows]) + "\r\n"
    return (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")


def bad_lines(response) -> dict[int, str]:
    return {
        int(li["data-line"]): li.get_text()
        for li in html(response).select(".desk-shop-import-errors li")
    }


@pytest.fixture
def stocked(app):
    """A live limited pen, an unlimited draft book with a member price and an end."""
    pen = make_product(app, slug="pen", title="匠心之笔, 限量", price_fen=12800, category_id=3)
    book = make_product(
        app,
        slug="book",
        title='签名版 "罗辑思维"',
        price_fen=6800,
        member_price_fen=5990,
        stock=None,
        per_member_limit=2,
        members_only=True,
        status="draft",
        ends_at=DEFAULT_NOW + timedelta(days=7),
        image=False,
    )
    return {"pen": pen, "book": book}


# --- export -------------------------------------------------------------------------------


def test_the_export_is_utf8_with_a_bom_and_exact_columns(app, editor, stocked):
    response = editor.get("/editor/shop/catalogue.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="catalogue-20261121.csv"'
    )
    data = response.get_data()
    assert data.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))
    assert rows == [
        list(COLUMNS),
        [
            "pen",
            "匠心之笔, 限量",
            "stationery",
            "128.00",
            "",
            "10",
            "",
            "2026-11-21 07:30",
            "",
            "0",
            "live",
        ],
        [
            "book",
            '签名版 "罗辑思维"',
            "",
            "68.00",
            "59.90",
            "",
            "2",
            "2026-11-21 07:30",
            "2026-11-28 08:00",
            "1",
            "draft",
        ],
    ]


def test_a_round_trip_changes_nothing(app, editor, stocked, make_user):
    buyer = make_user("buyer@example.com")
    place(app, buyer, stocked["pen"], 2)
    paid_order(app, buyer, stocked["pen"], 1)
    before = catalogue(app)
    exported = editor.get("/editor/shop/catalogue.csv").get_data()
    response = send(editor, exported)
    assert response.status_code == 302
    page = html(editor.get(response.headers["Location"]))
    assert "新增 0 件，更新 0 件，2 件没有变化" in page.select_one("#notice").get_text()
    assert catalogue(app) == before


def test_an_import_creates_and_updates_by_slug(app, editor, stocked):
    data = lines(
        "pen,匠心之笔（第二批）,文具精选,99,88.5,25,1,2026-11-21 20:00,2026-11-30 20:00,是,live",
        "notebook,死磕侠笔记本,survival,12.8,,,,,,false,draft",
    )
    response = send(editor, data)
    assert response.status_code == 302
    page = html(editor.get(response.headers["Location"]))
    assert "新增 1 件，更新 1 件" in page.select_one("#notice").get_text()
    now = catalogue(app)
    assert now["pen"]["title"] == "匠心之笔（第二批）"
    assert (now["pen"]["price_fen"], now["pen"]["member_price_fen"]) == (9900, 8850)
    assert (now["pen"]["stock"], now["pen"]["available"]) == (25, 25)
    assert now["pen"]["starts_at"] == DEFAULT_NOW + timedelta(hours=12)
    assert now["pen"]["members_only"] is True
    notebook = now["notebook"]
    assert notebook["category_id"] == 2 and notebook["price_fen"] == 1280
    assert notebook["stock"] is None and notebook["per_member_limit"] is None
    assert notebook["starts_at"] == DEFAULT_NOW and notebook["members_only"] is False


def test_every_bad_line_is_reported_and_nothing_changes(app, editor, stocked):
    before = catalogue(app)
    data = lines(
        "pen,匠心之笔,stationery,12.345,,10,,2026-11-21 07:30,,0,live",  # 2: price
        "fine,好的一行,,10,,,,,,1,draft",  # 3: good
        '"multi","两行的',  # 4-5: a quoted title over two lines
        '标题",,10,,,,,,1,draft',
        "fine,重复,,10,,,,,,1,draft",  # 6: duplicate slug
        "nope,没有分类,玄学,10,,,,,,1,draft",  # 7: category
        "short,少了几列,,10",  # 8: columns
        "new-live,直接上架,,10,,5,,,,1,live",  # 9: live without image
        "Bad Slug,x,,1,,,,2026-13-01 00:00,,2,draft",  # 10: three faults
    )
    response = send(editor, data)
    assert response.status_code == 422
    found = bad_lines(response)
    assert sorted(found) == [2, 6, 7, 8, 9, 10]
    assert "price：价格最多两位小数" in found[2]
    assert "和第 3 行重复" in found[6]
    assert "没有「玄学」这个分类" in found[7]
    assert "这一行有 4 列，表头有 11 列" in found[8]
    assert "上架前请至少上传一张商品图片" in found[9]
    assert all(f"{c}：" in found[10] for c in ("slug", "starts_at", "members_only"))
    assert found[2].startswith("第 2 行：")
    assert "商品没有任何改动" in html(response).select_one(".desk-shop-import-errors").get_text()
    assert catalogue(app) == before


def test_a_live_products_stock_can_only_be_raised_by_import(app, editor, stocked, make_user):
    buyer = make_user("buyer@example.com")
    paid_order(app, buyer, stocked["pen"], 3)
    row = "pen,匠心之笔,stationery,128.00,,{},,2026-11-21 07:30,,0,{}"
    for stock in ("9", "3", "2"):
        response = send(editor, lines(row.format(stock, "live")))
        assert response.status_code == 422
        assert "在售商品的库存只能调高" in bad_lines(response)[2], stock
    response = send(editor, lines(row.format("", "live")))
    assert "已有 3 件售出或保留，不能改为不限量" in bad_lines(response)[2]
    with app.app_context():
        assert counters(stocked["pen"]) == (10, 7, 0, 3)
    assert send(editor, lines(row.format("40", "live"))).status_code == 302
    with app.app_context():
        assert counters(stocked["pen"]) == (40, 37, 0, 3)
    # Off sale, it may be lowered, but never below what is sold and held.
    assert send(editor, lines(row.format("40", "archived"))).status_code == 302
    response = send(editor, lines(row.format("2", "archived")))
    assert "库存不能少于已售加保留的 3 件" in bad_lines(response)[2]
    assert send(editor, lines(row.format("3", "archived"))).status_code == 302
    with app.app_context():
        assert counters(stocked["pen"]) == (3, 0, 0, 3)
    # Giving an unlimited live product a stock would lower it too.
    make_product(app, slug="free", title="无限", stock=None)
    response = send(editor, lines("free,无限,,128.00,,100,,2026-11-21 07:30,,0,live"))
    assert "在售商品的库存只能调高" in bad_lines(response)[2]


def test_the_file_may_come_without_bom_in_any_column_order_or_as_gb18030(app, editor):
    header = ",".join(reversed(COLUMNS))
    row = "draft,否,,,,,,12.80,文具精选,中文标题,gb"
    data = ("\n".join([header, row]) + "\n").encode("gb18030")
    assert send(editor, data).status_code == 302
    no_bom = lines("plain,无 BOM,,1,,,,,,TRUE,draft", bom=False)
    assert send(editor, no_bom).status_code == 302
    now = catalogue(app)
    assert now["gb"]["title"] == "中文标题" and now["gb"]["members_only"] is False
    assert now["gb"]["category_id"] == 3 and now["gb"]["price_fen"] == 1280
    assert now["plain"]["members_only"] is True


@pytest.mark.parametrize(
    ("data", "message", "status"),
    [
        (b"", "文件是空的", 422),
        (b"\x00\x01\x02\xff\xfe" * 50, "CSV", 422),
        (b"slug,title\r\nx,y\r\n", "缺少列", 422),
        (lines("a,b,,1,,,,,,1,draft", header=HEADER + ",colour"), "不认识的列 colour", 422),
        (b"x" * (1024 * 1024 + 1), "不能超过 1 MB", 413),
        (lines(*[f"p{n},t,,1,,,,,,1,draft" for n in range(2001)]), "最多导入 2000 件", 422),
    ],
)
def test_files_that_cannot_be_read_are_refused(app, editor, data, message, status):
    response = send(editor, data)
    assert response.status_code == status
    text = html(response).select_one("main").get_text()
    assert message in text
    assert count(app) == 0


def test_an_import_with_no_file_is_refused(editor):
    token = csrf_token_from(editor, "/editor/shop/import")
    response = editor.post("/editor/shop/import", data={"csrf_token": token})
    assert response.status_code == 422
    assert html(response).select_one("#e-file").get_text() == "请选择要导入的 CSV 文件。"


def test_an_unclosed_quote_is_reported_with_its_line(app, editor):
    response = send(editor, lines("ok,好,,1,,,,,,1,draft", 'bad,"没有收尾,,1,,,,,,1,draft'))
    assert response.status_code == 422
    assert "引号没有配对" in bad_lines(response)[3]
    assert count(app) == 0


# --- the commands -------------------------------------------------------------------------


def test_the_import_command(app, cli, tmp_path, stocked):
    good = tmp_path / "good.csv"
    good.write_bytes(lines("pen,匠心之笔,stationery,128.00,,12,,2026-11-21 07:30,,0,live"))
    result = cli.invoke(args=["shop", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "新增 0 件，更新 1 件" in result.output
    before = catalogue(app)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        lines(
            "pen,匠心之笔,stationery,128.00,,50,,2026-11-21 07:30,,0,live",
            "x,,,1,,,,,,1,draft",
            "y,y,,free,,,,,,1,draft",
        )
    )
    result = cli.invoke(args=["shop", "import", str(bad)])
    assert result.exit_code == 1
    assert "第 3 行" in result.output and "请填写商品名称" in result.output
    assert "第 4 行" in result.output and "price：" in result.output
    assert "没有导入任何商品" in result.output
    assert catalogue(app) == before
    result = cli.invoke(args=["shop", "import", str(tmp_path / "missing.csv")])
    assert result.exit_code != 0


def test_the_export_command(app, cli, tmp_path, stocked):
    target = tmp_path / "out.csv"
    result = cli.invoke(args=["shop", "export", str(target)])
    assert result.exit_code == 0, result.output
    assert "已导出 2 件商品" in result.output
    data = target.read_bytes()
    assert data.startswith(codecs.BOM_UTF8) and data[3:].decode("utf-8").startswith(HEADER)
    with app.app_context():
        assert catalogue_csv.import_catalogue(data, actor=None).unchanged == 2
