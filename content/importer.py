"""Articles from markdown files with YAML front matter: how an editor team brings its back
catalogue and how scripts publish (`flask --app app content import`, see docs/CONTENT.md).

A file goes through `save_article`, so it meets exactly the rules of the editor desk. It is
created, or updated when an article has its slug. A file with an error changes nothing: its
voice and cover are checked before anything is written, then their rows and the article are
saved in one transaction, so a refused article takes its new media rows with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app import utcnow, write_transaction
from content import articles, media, search
from content.articles import SLUG_RE, ArticleError, Draft
from content.media import MediaError
from content.models import Article

MAX_FILE_BYTES = 1024 * 1024
KEYS = (
    "title",
    "slug",
    "summary",
    "column",
    "keywords",
    "visibility",
    "status",
    "publish_at",
    "audio",
    "cover",
)
# The names `save_article` gives its faults, as the front matter calls them.
FRONT_MATTER_NAMES = {"body_md": "body", "voice_id": "audio", "cover_id": "cover"}
FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^---[ \t]*(?:\n|\Z)", re.S | re.M)
LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
NO_FRONT_MATTER = "文件要以 front matter 开头：第一行是 ---，接着是 title: 等，再以一行 --- 结束。"
TIME_FORMAT = "发布时间的格式应为 2026-11-22 06:30（上海时间）。"
DRAIN_EVERY = 50


@dataclass(frozen=True)
class ImportResult:
    """What became of one file: `action` is "created" or "updated", or the file's faults
    are in `errors` (front matter key, or "file" for the file as a whole → message)."""

    path: Path
    action: str = ""
    slug: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


class _Refused(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))


# --- reading a file ----------------------------------------------------------------------


class _FrontMatterLoader(yaml.SafeLoader):
    """`yaml.safe_load`, except that a key written twice is an error, not "the last wins"."""


def _mapping_without_repeats(loader: _FrontMatterLoader, node: yaml.MappingNode) -> dict:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} is given twice", key_node.start_mark
                )
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep=True)


_FrontMatterLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_repeats
)


def read_article_file(path: Path) -> tuple[dict[str, Any], str]:
    """The front matter (a dict) and the markdown body of a file; raises _Refused."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise _Refused({"file": f"读不了这个文件：{error.strerror or error}。"}) from None
    if len(data) > MAX_FILE_BYTES:
        raise _Refused({"file": "文件超过 1 MB：一篇文章的 markdown 不能这么长。"})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _Refused(
            {"file": f"文件不是 UTF-8 编码（第 {error.start + 1} 个字节读不通），请另存为 UTF-8。"}
        ) from None
    text = text.replace("\r\n", "\n")
    found = FRONT_MATTER.match(text)
    if found is None:
        raise _Refused({"file": NO_FRONT_MATTER})
    try:
        front = yaml.load(found.group(1), Loader=_FrontMatterLoader)  # noqa: S506 (safe loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"第 {mark.line + 2} 行" if mark is not None else ""
        raise _Refused(
            {"file": f"front matter {where}的 YAML 写错了：{error.problem or error}。"}
        ) from None
    except yaml.YAMLError as error:
        raise _Refused({"file": f"front matter 的 YAML 写错了：{error}。"}) from None
    if front is None:
        front = {}
    if not isinstance(front, dict):
        raise _Refused({"file": "front matter 应是一行一个的「键: 值」，例如 title: 今天读什么。"})
    return front, text[found.end() :].lstrip("\n")


# --- front matter to a draft -------------------------------------------------------------


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "真假值（yes、no、true、false 会被读成真假值，请加引号）"
    if isinstance(value, int | float):
        return "数字（请加引号）"
    if isinstance(value, datetime | date):
        return "日期（请加引号）"
    if isinstance(value, list):
        return "列表"
    if isinstance(value, dict):
        return "键值表"
    return type(value).__name__


def _text(front: dict[str, Any], key: str, errors: dict[str, str]) -> str:
    value = front.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    errors[key] = f"{key} 应是一段文字，这里却是{_kind(value)}。"
    return ""


def _keywords(front: dict[str, Any], errors: dict[str, str]) -> str:
    value = front.get("keywords")
    if value is None or isinstance(value, str):
        return value or ""
    if not isinstance(value, list):
        errors["keywords"] = (
            f"keywords 应是一个列表（[读书, 习惯]）或一段文字，这里却是{_kind(value)}。"
        )
        return ""
    words = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            errors["keywords"] = f"keywords 的每一项应是一个词，这里有一项是{_kind(item)}。"
            return ""
        word = str(item).strip()
        if articles.KEYWORD_SPLIT.search(word):
            errors["keywords"] = f"keywords 的每一项应是一个词，「{word}」里有空格或标点。"
            return ""
        words.append(word)
    return " ".join(words)


def _publish_at(front: dict[str, Any], errors: dict[str, str]) -> datetime | None:
    """An aware datetime; a time without a zone is the site's local time."""
    value = front.get("publish_at")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            if not LOCAL_TIME.match(text):
                raise ValueError(text)
            value = datetime.fromisoformat(text)
        except ValueError:
            errors["publish_at"] = TIME_FORMAT
            return None
    if isinstance(value, datetime):
        if not 1970 <= value.year <= 9998:
            errors["publish_at"] = "发布时间的年份应在 1970 到 9998 之间。"
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(current_app.config["TIMEZONE"]))
        return value
    if isinstance(value, date):
        errors["publish_at"] = "发布时间要写到分钟，例如 2026-11-22 06:30。"
    else:
        errors["publish_at"] = TIME_FORMAT
    return None


def _choice(front: dict[str, Any], key: str, allowed: tuple[str, ...], errors: dict[str, str]):
    value = front.get(key)
    if value is None:
        return allowed[0]
    if value not in allowed:
        shown = value if isinstance(value, str) else _kind(value)
        errors[key] = f"{key} 只能是 {' 或 '.join(allowed)}，不能是「{shown}」。"
        return allowed[0]
    return value


def _media(path: Path, front: dict[str, Any], errors: dict[str, str]) -> dict[str, tuple]:
    """The checked voice and cover, by the Draft field they fill: (checked, original name)."""
    found = {}
    for key, what, check, draft_field in (
        ("audio", "音频", media.check_audio, "voice_id"),
        ("cover", "图片", media.check_image, "cover_id"),
    ):
        name = _text(front, key, errors).strip()
        if not name:
            continue
        where = path.parent / name
        if not where.is_file():
            errors[key] = f"找不到{what}文件 {name}（路径相对于这个 markdown 文件所在的文件夹）。"
            continue
        try:
            with open(where, "rb") as f:
                found[draft_field] = (check(f), where.name)
        except MediaError as refused:
            errors[key] = refused.message
        except OSError as error:
            errors[key] = f"读不了{what}文件 {name}：{error.strerror or error}。"
    return found


def _draft(path: Path, front: dict[str, Any], body: str) -> tuple[Draft, dict[str, tuple]]:
    """The draft a file describes and its checked media; raises _Refused with every fault."""
    errors: dict[str, str] = {}
    for key in front:
        if key not in KEYS:
            errors[str(key)] = f"不认识的键「{key}」。可用的键：{', '.join(KEYS)}。"
    if front.get("title") is None:
        errors["title"] = "front matter 里缺少 title（标题）。"
    slug = _text(front, "slug", errors).strip().lower()
    if not slug and "slug" not in errors:
        slug = path.stem.lower()
        if not SLUG_RE.match(slug):
            errors["slug"] = (
                f"请在 front matter 里写 slug：文件名「{path.stem}」不能当链接名"
                "（只能用小写字母、数字和连字符）。"
            )
    draft = Draft(
        title=_text(front, "title", errors),
        body_md=body,
        summary=_text(front, "summary", errors),
        slug=slug,
        column=_text(front, "column", errors).strip(),
        keywords=_keywords(front, errors),
        visibility=_choice(front, "visibility", ("public", "members"), errors),
        status=_choice(front, "status", ("draft", "scheduled", "published"), errors),
        publish_at=_publish_at(front, errors),
    )
    # The desk's own field rules (save_article applies them again), run now so that one
    # import shows every fault of the file, together with those of its voice and cover.
    try:
        articles._check(draft, utcnow())
    except ArticleError as refused:
        for name, message in refused.errors.items():
            errors.setdefault(FRONT_MATTER_NAMES.get(name, name), message)
    checked = _media(path, front, errors)
    if errors:
        raise _Refused(errors)
    return draft, checked


# --- importing ---------------------------------------------------------------------------


def import_file(path: Path, *, drain: bool = True) -> ImportResult:
    """Create or update (by slug) the article a markdown file describes. A file with an error
    changes nothing and gives its faults in the result. `drain=False` leaves the search index
    to be brought up to date later (`search.drain_quietly()`)."""
    created: list[str] = []  # media files this import wrote, removed if it fails
    try:
        front, body = read_article_file(path)
        draft, checked = _draft(path, front, body)
        with write_transaction() as session:
            existing = session.scalar(select(Article).where(Article.slug == draft.slug))
            for draft_field, (result, name) in checked.items():
                kept = media.store(result, original_name=name, created=created)
                setattr(draft, draft_field, kept.id)
            if draft.publish_at is None and existing is not None:
                draft.publish_at = existing.publish_at  # a re-import does not move the piece
            article = articles.save_article(
                draft, article_id=existing.id if existing is not None else None
            )
            done = ImportResult(path, "updated" if existing else "created", article.slug)
    except (_Refused, ArticleError, SQLAlchemyError, OSError) as failed:
        store = media.media_store()
        for written in created:
            store.remove(written)
        return ImportResult(path, errors=_errors_of(failed))
    if drain:
        search.drain_quietly()
    return done


def _errors_of(failed: Exception) -> dict[str, str]:
    if isinstance(failed, _Refused):
        return failed.errors
    if isinstance(failed, ArticleError):
        return {FRONT_MATTER_NAMES.get(k, k): v for k, v in failed.errors.items()}
    if isinstance(failed, IntegrityError):
        return {"slug": "链接名或关键词刚被另一篇文章占用，请重试。"}
    if isinstance(failed, SQLAlchemyError):
        return {"file": f"数据库没能保存这一篇（{type(failed).__name__}），什么也没有改变。"}
    return {"file": f"存不下媒体文件：{failed}。"}


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def markdown_files(paths: Iterable[Path]) -> Iterator[Path | ImportResult]:
    """Every file named and every *.md under every folder named (hidden ones left out), in
    name order; a path that cannot be used comes out as a failed result."""
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found = sorted(
                (p for p in path.rglob("*.md") if p.is_file() and not _hidden(p, path)),
                key=lambda p: p.relative_to(path).parts,
            )
            if not found:
                yield ImportResult(path, errors={"file": "这个文件夹里没有 .md 文件。"})
        elif path.is_file():
            found = [path]
        else:
            yield ImportResult(path, errors={"file": "找不到这个文件或文件夹。"})
            continue
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                yield file


def import_paths(paths: Iterable[Path]) -> Iterator[ImportResult]:
    """Import files and folders (see `markdown_files`), one result per file as it is done.
    The search index is brought up to date every few files and at the end."""
    pending = 0
    try:
        for item in markdown_files(paths):
            if isinstance(item, ImportResult):
                yield item
                continue
            result = import_file(item, drain=False)
            if result.ok:
                pending += 1
            if pending >= DRAIN_EVERY:
                search.drain_quietly()
                pending = 0
            yield result
    finally:
        if pending:
            search.drain_quietly()
