"""The board's sections (问答, 求职, 招聘, 知识分享 and any an editor adds): the checks on a
section's fields and saving them, as the moderation desk's section form uses them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import db, utcnow, write_transaction
from board.models import Section
from board.posts import BoardError, _text

SLUG = re.compile(r"[a-z0-9-]{1,40}")
NAME_MAX = 20
DESCRIPTION_MAX = 200
POSITION_MAX = 9999


@dataclass
class SectionForm:
    """A section as typed in the desk's form (every value a string; `is_qa` "1" or "")."""

    slug: str = ""
    name: str = ""
    description: str = ""
    is_qa: str = ""
    position: str = ""

    @classmethod
    def of(cls, section: Section) -> SectionForm:
        return cls(
            slug=section.slug,
            name=section.name,
            description=section.description,
            is_qa="1" if section.is_qa else "",
            position=str(section.position),
        )

    @classmethod
    def from_form(cls, form) -> SectionForm:
        return cls(**{name: _text(form.get(name, "")) for name in cls.__dataclass_fields__})


def save_section(form: SectionForm, section_id: int | None = None) -> Section:
    """Create a section, or change the one with `section_id`. BoardError (422) names every
    bad field: the slug (lower-case letters, digits, hyphens), the name (1 to 20 characters),
    both unique; the description; the position (a whole number; blank puts a new section last
    and keeps an edited one where it is)."""
    errors: dict[str, str] = {}
    slug = form.slug.strip()
    name = " ".join(form.name.split())
    description = " ".join(form.description.split())
    position_text = form.position.strip()
    if not SLUG.fullmatch(slug):
        errors["slug"] = "标识只能用小写字母、数字和连字符（-），1 到 40 个字符，如 dushu。"
    if not name:
        errors["name"] = "请填写版块名称。"
    elif len(name) > NAME_MAX:
        errors["name"] = f"版块名称最多 {NAME_MAX} 个字。"
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = f"简介最多 {DESCRIPTION_MAX} 个字。"
    position: int | None = None
    if position_text:
        if position_text.isascii() and position_text.isdigit():
            position = int(position_text)
        if position is None or position > POSITION_MAX:
            errors["position"] = f"排序请填 0 到 {POSITION_MAX} 之间的整数，小的排在前面。"
    if errors:
        raise BoardError(errors)
    try:
        with write_transaction() as session:
            section = session.get(Section, section_id) if section_id is not None else None
            if section_id is not None and section is None:
                raise BoardError("这个版块不存在。", field="section", status=404)
            for column, value, field, message in (
                (Section.slug, slug, "slug", f"标识 {slug} 已被另一个版块使用。"),
                (Section.name, name, "name", f"名称「{name}」已被另一个版块使用。"),
            ):
                other = session.scalar(select(Section.id).where(column == value))
                if other is not None and other != section_id:
                    errors[field] = message
            if errors:
                raise BoardError(errors)
            if section is None:
                if position is None:
                    last = session.scalar(select(func.coalesce(func.max(Section.position), 0)))
                    position = (last or 0) + 1
                section = Section(created_at=utcnow())
                session.add(section)
            section.slug, section.name, section.description = slug, name, description
            section.is_qa = bool(form.is_qa)
            if position is not None:
                section.position = position
    except IntegrityError:  # the same slug or name saved at the same moment elsewhere
        db.session.rollback()
        raise BoardError("标识或名称刚被另一个版块使用了。", field="slug") from None
    return section
