"""`flask --app app content import`: the example in docs/CONTENT.md publishes as written,
re-imports update by slug, and every bad file is reported clearly and changes nothing."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from PIL import Image
from sqlalchemy import func, select, update

from app import db
from content import articles, importer
from content.articles import Draft
from content.models import DEFAULT_COLUMNS, Article, ArticleKeyword, ArticleRevision, Media
from tests.conftest import DEFAULT_NOW, TEST_DATABASE_URL, html
from tests.test_docs import BIN, ROOT, clean_env, code_blocks, documented_commands, flask_lines

CONTENT_DOC = ROOT / "docs" / "CONTENT.md"
FIXTURES = Path(__file__).parent / "fixtures"


def example() -> str:
    """The one complete example file of docs/CONTENT.md."""
    blocks = re.findall(r"```markdown\n(.*?)```", CONTENT_DOC.read_text(), re.S)
    assert len(blocks) == 1
    return blocks[0]


def documented_imports() -> list[list[str]]:
    """The `content import` command lines of docs/CONTENT.md, as argument lists."""
    lines = [line for b in code_blocks(CONTENT_DOC) for line in flask_lines(b)]
    return [shlex.split(line)[1:] for line in lines if " content import " in line]


def jpeg() -> bytes:
    out = BytesIO()
    Image.new("RGB", (1600, 900), (30, 90, 160)).save(out, "JPEG")
    return out.getvalue()


def lay_out_example(where: Path, path: str) -> tuple[Path, dict]:
    """Write the example at `where/path` with the voice and cover its front matter names."""
    text = example()
    target = where / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    front = yaml.safe_load(text.split("---\n")[1])
    if front.get("audio"):
        (target.parent / front["audio"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / "tone.mp3", target.parent / front["audio"])
    if front.get("cover"):
        (target.parent / front["cover"]).parent.mkdir(parents=True, exist_ok=True)
        (target.parent / front["cover"]).write_bytes(jpeg())
    return target, front


def stored() -> dict[str, int]:
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Article, ArticleRevision, ArticleKeyword, Media)
    }


def write(where: Path, name: str, front: str, body: str = "正文第一段。\n") -> Path:
    path = where / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front.strip()}\n---\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


@pytest.fixture
def run(cli):
    def invoke(*paths: Path | str):
        return cli.invoke(args=["content", "import", *map(str, paths)])

    return invoke


# --- the documented example --------------------------------------------------------------


def test_the_documented_example_is_published_with_its_voice_and_cover(app, run, client, tmp_path):
    path, front = lay_out_example(tmp_path, "back-catalogue/example.md")
    result = run(path)
    assert result.exit_code == 0, result.output
    slug = front["slug"]
    assert result.output.splitlines() == [
        f"✓ created {slug}  {path}",
        "新建 1 篇，更新 0 篇，失败 0 个 (1 created, 0 updated, 0 failed)",
    ]
    page = html(client.get(f"/a/{slug}"))
    assert page.select_one("h1").get_text() == front["title"]
    assert page.select_one(".summary").get_text() == front["summary"]
    column = next(c["name"] for c in DEFAULT_COLUMNS if c["slug"] == front["column"])
    assert page.select_one(".eyebrow a").get_text() == column
    hint = page.select_one(".keyword-hint").get_text()
    assert all(word in hint for word in front["keywords"])
    voice = client.get(page.select_one(".voice audio")["src"])
    assert voice.status_code == 200 and voice.mimetype == "audio/mpeg"
    assert voice.data == (FIXTURES / "tone.mp3").read_bytes()
    cover = page.select_one("img.cover")
    assert cover["width"] == "1080" and client.get(cover["src"]).status_code == 200
    with app.app_context():
        article = db.session.scalar(select(Article).where(Article.slug == slug))
        assert article.status == "published" and article.version == 1
        local = datetime.strptime(front["publish_at"], "%Y-%m-%d %H:%M")
        assert article.publish_at == local.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
        assert article.voice.original_name == Path(front["audio"]).name
        assert articles.article_for_keyword(front["keywords"][0]).id == article.id
        assert stored() == {
            "Article": 1,
            "ArticleRevision": 1,
            "ArticleKeyword": len(front["keywords"]),
            "Media": 2,
        }


def test_the_documented_commands_run_as_written(app, client, tmp_path):
    """Each `content import` line of docs/CONTENT.md, run by the shell's flask in a folder
    laid out as the doc says, on this test's database."""
    commands = documented_imports()
    assert commands and "content import" in documented_commands()
    workdir = tmp_path / "work"
    _, front = lay_out_example(workdir, commands[0][-1])
    env = clean_env(tmp_path)
    env.update(DATA_DIR=str(app.config["DATA_DIR"]), PYTHONPATH=str(ROOT), SECRET_KEY="test")
    if TEST_DATABASE_URL:
        env["DATABASE_URL"] = TEST_DATABASE_URL
    outputs = []
    for args in commands:
        done = subprocess.run(
            [str(BIN / "flask"), *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        outputs.append(done.stdout)
    assert f"✓ created {front['slug']}" in outputs[0]
    assert all(f"✓ updated {front['slug']}" in out for out in outputs[1:])
    assert client.get(f"/a/{front['slug']}").status_code == 200


# --- create or update by slug ------------------------------------------------------------


def test_a_reimport_updates_by_slug_with_a_new_version(app, run, client, tmp_path):
    path, front = lay_out_example(tmp_path, "example.md")
    assert run(path).exit_code == 0
    path.write_text(example().replace(front["title"], "每天读十页书（修订）"), encoding="utf-8")
    result = run(path)
    assert result.exit_code == 0, result.output
    assert f"✓ updated {front['slug']}  {path}" in result.output
    assert html(client.get(f"/a/{front['slug']}")).select_one("h1").get_text() == (
        "每天读十页书（修订）"
    )
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert article.version == 2
        versions = db.session.scalars(select(ArticleRevision.version).order_by("id")).all()
        assert versions == [1, 2]
        # The same voice and cover bytes are stored once.
        assert stored()["Article"] == 1 and stored()["Media"] == 2


def test_a_reimport_keeps_the_publish_time_when_the_file_gives_none(app, run, clock, tmp_path):
    path = write(tmp_path, "20261121-habit.md", "title: 习惯\nstatus: published")
    assert run(path).exit_code == 0
    clock.advance(days=3)
    result = run(path)
    assert "✓ updated 20261121-habit" in result.output
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert article.publish_at == DEFAULT_NOW and article.version == 2


def test_leaving_a_key_out_on_reimport_takes_its_default(app, run, tmp_path):
    shutil.copy(FIXTURES / "tone.mp3", tmp_path / "voice.mp3")
    path = write(tmp_path, "voiced.md", "title: 有声\nstatus: published\naudio: voice.mp3")
    assert run(path).exit_code == 0
    write(tmp_path, "voiced.md", "title: 有声")
    assert run(path).exit_code == 0
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert article.voice_id is None and article.status == "draft"


@pytest.mark.parametrize(
    "publish_at",
    [
        "2026-11-21 06:30",
        '"2026-11-21 06:30"',
        "2026-11-21 06:30:00",
        "2026-11-21T06:30:00+08:00",
        "2026-11-20T22:30:00Z",
        "'2026-11-20T22:30Z'",
    ],
)
def test_publish_at_is_shanghai_time_unless_it_says_otherwise(app, tmp_path, publish_at):
    path = write(tmp_path, "timed.md", f"title: 定时\nstatus: published\npublish_at: {publish_at}")
    with app.app_context():
        result = importer.import_file(path)
        assert result.ok and result.action == "created", result.errors
        article = db.session.scalar(select(Article))
        assert article.publish_at == datetime(2026, 11, 20, 22, 30, tzinfo=UTC)


def test_keywords_as_text_and_a_bom_and_windows_line_ends_are_fine(app, tmp_path):
    path = tmp_path / "windows.md"
    text = "---\r\ntitle: 来自记事本\r\nkeywords: 记事本、Windows\r\n---\r\n第一段。\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    with app.app_context():
        result = importer.import_file(path)
        assert result.ok, result.errors
        article = db.session.scalar(select(Article))
        assert article.slug == "windows" and article.title == "来自记事本"
        assert article.keyword_list == ["记事本", "windows"]
        assert article.body_md == "第一段。\n" and article.status == "draft"


# --- a file with an error changes nothing ------------------------------------------------


def test_a_keyword_held_by_another_published_article_stores_nothing(app, run, tmp_path):
    with app.app_context():
        articles.save_article(
            Draft(title="怎样做读书笔记", keywords="读书", status="published", slug="notes")
        )
        before = stored()
    shutil.copy(FIXTURES / "tone.mp3", tmp_path / "voice.mp3")
    first = write(tmp_path, "a-free.md", "title: 自由\nkeywords: [晨读]\nstatus: published")
    clash = write(
        tmp_path,
        "b-clash.md",
        "title: 又讲读书\nkeywords: [读书]\nstatus: published\naudio: voice.mp3",
    )
    result = run(tmp_path)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"✓ created a-free  {first}",
        f"✗ {clash}: 关键词「读书」已被《怎样做读书笔记》使用。 (keywords)",
        "新建 1 篇，更新 0 篇，失败 1 个 (1 created, 0 updated, 1 failed)",
    ]
    with app.app_context():
        # Only the free file's article, revision and keyword; no voice row for the clash.
        assert stored() == {
            "Article": before["Article"] + 1,
            "ArticleRevision": before["ArticleRevision"] + 1,
            "ArticleKeyword": before["ArticleKeyword"] + 1,
            "Media": 0,
        }
        assert db.session.scalar(select(Article).where(Article.slug == "b-clash")) is None
        # Nor the voice file itself.
        assert list(Path(app.config["MEDIA_DIR"]).rglob("*.mp3")) == []


def test_a_failed_update_leaves_the_article_as_it_was(app, run, tmp_path):
    path = write(tmp_path, "kept.md", "title: 原样\nstatus: published", "原来的正文。\n")
    assert run(path).exit_code == 0
    shutil.copy(FIXTURES / "tone.mp3", tmp_path / "voice.mp3")
    write(tmp_path, "kept.md", "title: 改了\ncolumn: nowhere\naudio: voice.mp3", "新的正文。\n")
    result = run(path)
    assert result.exit_code == 1
    assert "没有这个栏目。 (column)" in result.output
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert (article.title, article.version, article.voice_id) == ("原样", 1, None)
        assert article.body_md == "原来的正文。\n"
        assert stored() == {"Article": 1, "ArticleRevision": 1, "ArticleKeyword": 0, "Media": 0}


def gbk(where: Path) -> Path:
    path = where / "gbk.md"
    path.write_bytes("---\ntitle: 国标码\n---\n正文。\n".encode("gbk"))
    return path


def huge(where: Path) -> Path:
    return write(where, "huge.md", "title: 太长", "字" * 400_000)


def test_a_body_over_the_desk_limit_is_refused_before_its_voice_is_stored(app, run, tmp_path):
    shutil.copy(FIXTURES / "tone.mp3", tmp_path / "voice.mp3")
    path = write(tmp_path, "long.md", "title: 很长\naudio: voice.mp3", "x" * 200_001)
    result = run(path)
    assert result.exit_code == 1 and "正文最多 200000 个字符。 (body)" in result.output
    with app.app_context():
        assert stored()["Media"] == 0


BAD_FILES = [
    ("bad-yaml", "title: 标题\nsummary: 一: 二", "front matter 第 3 行的 YAML 写错了", None),
    ("unclosed-yaml", "title: [没有结束", "的 YAML 写错了：expected ',' or ']'", None),
    ("no-title", "summary: 没有标题", "front matter 里缺少 title（标题）。 (title)", None),
    ("empty-title", "title: ' '", "请填写标题。 (title)", None),
    ("unknown-key", "title: 标题\ntags: [a]", "不认识的键「tags」", "tags"),
    ("repeated-key", "title: 一\ntitle: 二", "'title' is given twice", None),
    ("title-list", "title: [一, 二]", "title 应是一段文字，这里却是列表。 (title)", None),
    ("title-number", "title: 1984", "title 应是一段文字，这里却是数字（请加引号）。", "title"),
    ("keywords-dict", "title: 标题\nkeywords: {a: 1}", "keywords 应是一个列表", "keywords"),
    ("keyword-spaces", "title: 标题\nkeywords: [读 书]", "「读 书」里有空格或标点", "keywords"),
    ("bad-time", "title: 标题\npublish_at: 明天早上", "发布时间的格式应为", "publish_at"),
    ("date-only", "title: 标题\npublish_at: 2026-11-22", "发布时间要写到分钟", "publish_at"),
    ("time-junk", "title: 标题\npublish_at: 2026-11-22 06:30 左右", "发布时间的格式", None),
    (
        "past-schedule",
        "title: 标题\nstatus: scheduled\npublish_at: 2026-11-20 06:30",
        "定时发布的时间需要晚于现在。 (publish_at)",
        None,
    ),
    ("bad-status", "title: 标题\nstatus: live", "status 只能是 draft 或 scheduled 或", "status"),
    ("bad-visibility", "title: 标题\nvisibility: secret", "visibility 只能是", "visibility"),
    ("no-audio-file", "title: 标题\naudio: missing.mp3", "找不到音频文件 missing.mp3", "audio"),
    ("video-as-audio", "title: 标题\naudio: video.mp4", "不是可用的音频", "audio"),
    ("text-as-audio", "title: 标题\naudio: notes.txt", "不是可用的音频", "audio"),
    ("audio-as-cover", "title: 标题\ncover: voice.mp3", "不是可用的图片", "cover"),
    ("no-column", "title: 标题\ncolumn: nowhere\naudio: voice.mp3", "没有这个栏目。", "column"),
    ("Bad Name", "title: 文件名不能当链接名", "请在 front matter 里写 slug", "slug"),
    ("bad-slug", "title: 标题\nslug: Not_OK!", "链接名只能用小写字母", "slug"),
    ("long-title", f"title: {'长' * 121}", "标题最多 120 个字。", "title"),
    ("ancient-time", "title: 标题\npublish_at: '0001-01-01 00:00'", "年份应在", "publish_at"),
    ("far-time", "title: 标题\npublish_at: 9999-12-31 23:59", "年份应在", "publish_at"),
]


@pytest.mark.parametrize(
    ("name", "front", "message", "key"), BAD_FILES, ids=[case[0] for case in BAD_FILES]
)
def test_a_bad_file_is_reported_clearly_and_stores_nothing(
    app, run, tmp_path, name, front, message, key
):
    shutil.copy(FIXTURES / "tone.mp3", tmp_path / "voice.mp3")
    shutil.copy(FIXTURES / "silent-video.mp4", tmp_path / "video.mp4")
    (tmp_path / "notes.txt").write_text("这不是音频。", encoding="utf-8")
    path = write(tmp_path, f"{name}.md", front)
    result = run(path)
    assert result.exit_code == 1
    line = result.output.splitlines()[0]
    assert line.startswith(f"✗ {path}: ")
    assert message in line
    if key is not None:
        assert f"({key})" in line
    assert result.output.splitlines()[-1].endswith("(0 created, 0 updated, 1 failed)")
    with app.app_context():
        assert stored() == {"Article": 0, "ArticleRevision": 0, "ArticleKeyword": 0, "Media": 0}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (gbk, "文件不是 UTF-8 编码"),
        (huge, "文件超过 1 MB"),
        (lambda where: write(where, "plain.md", "", "").with_suffix(".txt"), "找不到这个文件"),
    ],
    ids=["not-utf-8", "too-big", "missing"],
)
def test_an_unreadable_file_is_reported_and_stores_nothing(app, run, tmp_path, make, message):
    path = make(tmp_path)
    result = run(path)
    assert result.exit_code == 1
    assert result.output.startswith(f"✗ {path}: {message}")
    with app.app_context():
        assert stored()["Article"] == 0


def test_a_file_without_front_matter_says_how_to_begin(run, tmp_path):
    path = tmp_path / "plain.md"
    path.write_text("# 只有正文\n\n没有 front matter。\n", encoding="utf-8")
    result = run(path)
    assert result.exit_code == 1
    assert "文件要以 front matter 开头：第一行是 ---" in result.output


def test_every_fault_of_a_file_is_shown_at_once(run, tmp_path):
    path = write(
        tmp_path, "many.md", "title: ''\nkeywords: {a: 1}\nvisibility: secret\naudio: gone.mp3"
    )
    line = run(path).output.splitlines()[0]
    for key in ("title", "keywords", "visibility", "audio"):
        assert f"({key})" in line


# --- folders -----------------------------------------------------------------------------


def test_a_folder_is_imported_in_name_order_and_the_good_files_still_land(app, run, tmp_path):
    folder = tmp_path / "catalogue"
    write(folder, "b-second.md", "title: 第二篇\nstatus: published")
    write(folder, "a-first.md", "title: 第一篇\nstatus: published")
    write(folder, "c-broken.md", "title: [坏的")
    write(folder, "d/e-nested.md", "title: 子文件夹里的\nstatus: published")
    write(folder, ".obsidian/hidden.md", "title: 隐藏的")
    (folder / "readme.txt").write_text("不是 markdown", encoding="utf-8")
    result = run(folder)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert [line.split()[0:2] for line in lines[:4]] == [
        ["✓", "created"],
        ["✓", "created"],
        ["✗", f"{folder / 'c-broken.md'}:"],
        ["✓", "created"],
    ]
    assert [line.split()[2] for line in (lines[0], lines[1], lines[3])] == [
        "a-first",
        "b-second",
        "e-nested",
    ]
    assert lines[-1] == "新建 3 篇，更新 0 篇，失败 1 个 (3 created, 0 updated, 1 failed)"
    with app.app_context():
        assert stored()["Article"] == 3


def test_files_and_folders_mix_and_a_file_named_twice_is_imported_once(run, tmp_path):
    path = write(tmp_path / "folder", "only.md", "title: 唯一")
    result = run(path, tmp_path / "folder", tmp_path / "empty-or-missing")
    assert result.output.splitlines() == [
        f"✓ created only  {path}",
        f"✗ {tmp_path / 'empty-or-missing'}: 找不到这个文件或文件夹。",
        "新建 1 篇，更新 0 篇，失败 1 个 (1 created, 0 updated, 1 failed)",
    ]


def test_an_empty_folder_is_an_error_and_no_paths_is_a_usage_error(run, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "empty")
    assert result.exit_code == 1 and "这个文件夹里没有 .md 文件。" in result.output
    result = run()
    assert result.exit_code == 2 and "Missing argument 'PATHS...'" in result.output


def test_imported_articles_are_found_by_search(app, run, client, tmp_path):
    path, front = lay_out_example(tmp_path, "example.md")
    assert run(path).exit_code == 0
    page = html(client.get("/search", query_string={"q": "十页"}))
    links = [a["href"] for a in page.select("a[href^='/a/']")]
    assert f"/a/{front['slug']}" in links


def test_a_keyword_taken_in_a_race_stores_nothing(app, run, tmp_path, monkeypatch):
    """The check in save_article passed, then the unique index refused the keyword: the
    voice row stored for the file is rolled back with the article."""
    with app.app_context():
        holder = articles.save_article(Draft(title="先到的", keywords="读书", slug="first"))
        holder_id = holder.id
        before = stored()
    original = articles._apply

    def racing(session, article, *args):
        original(session, article, *args)
        # Another editor publishes 读书 between the check and the write.
        session.execute(
            update(ArticleKeyword).where(ArticleKeyword.article_id == holder_id).values(live=True)
        )

    monkeypatch.setattr(articles, "_apply", racing)
    shutil.copy(FIXTURES / "tone.mp3", tmp_path / "voice.mp3")
    path = write(
        tmp_path, "late.md", "title: 晚到的\nkeywords: 读书\nstatus: published\naudio: voice.mp3"
    )
    result = run(path)
    assert result.exit_code == 1
    assert "关键词或链接名刚被另一篇文章占用，请换一个。 (keywords)" in result.output
    with app.app_context():
        assert stored() == before and before["Media"] == 0
        assert db.session.scalar(select(ArticleKeyword.live)) is False
