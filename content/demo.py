"""Fourteen days of daily pieces ending today, for `flask --app app demo load`, each with a
generated one-minute morning voice (see content/voices.py)."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from io import BytesIO
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from app import db, utcnow
from content import articles, media, voices
from content.articles import Draft
from content.models import Article

PIECES = [
    (
        "读书",
        "为什么要每天读一点书",
        "每天读十页，一年就是十几本书。关键不在多，而在不断。",
        "reading-notes",
        "public",
    ),
    (
        "历史",
        "史记里的一个小人物",
        "太史公写刺客、写游侠，也写市井里的普通人。",
        "reading-notes",
        "members",
    ),
    ("社群", "一群人为什么能走得更远", "社群不是人多，而是彼此信任、互相成就。", "daily", "public"),
    ("思维", "罗辑思维：把知识变成习惯", "知识的价值不在于知道，而在于用起来。", "daily", "public"),
    (
        "时间",
        "清晨的一个小时",
        "早起的一个小时，是一天里唯一完全属于自己的时间。",
        "daily",
        "members",
    ),
    ("笔记", "怎样做读书笔记", "好的笔记不是抄书，而是和作者对话。", "reading-notes", "public"),
    (
        "匠心",
        "一支笔的匠心",
        "一支好用的笔，背后是几十道工序和几代人的手艺。",
        "lessons",
        "members",
    ),
    ("提问", "会提问比会回答更重要", "一个好问题，往往已经包含了答案的一半。", "daily", "public"),
    (
        "城市",
        "一座城市的记忆",
        "街道、老店和方言，是一座城市最不该丢掉的东西。",
        "lessons",
        "public",
    ),
    ("复利", "知识的复利", "今天多懂一点，明天就能多懂很多。", "daily", "members"),
    ("专注", "在碎片时代保持专注", "把手机放远一点，把书拿近一点。", "daily", "public"),
    ("分享", "分享是最好的学习", "能把一件事讲清楚，才算真的懂了。", "lessons", "public"),
    ("好奇", "保持好奇心", "好奇心是一切学习的起点，也是让人年轻的秘诀。", "daily", "public"),
    ("晨读", "晨读的第一天", "从今天起，每天早上六点半，我们在这里见面。", "daily", "public"),
]

BODY = """很多人问我：每天只有六十秒，能讲清楚什么？\
其实六十秒不是为了讲完一件事，而是为了开一个头。今天我们聊的是「{title}」。

读书、做事、和人相处，道理往往不难，难的是每天都做。一个习惯的养成，靠的不是决心，而是一个\
足够小、小到不会失败的开始。

<!--more-->

下面是给会员的完整内容。我们先看一个故事：有一位读者，坚持每天早上读十分钟书，三年后，他\
读完了两百多本书，也在社群里结识了一群同样爱读书的朋友。

> 知识就像复利，坚持的时间越长，回报越惊人。

最后留一个小作业：今天找一本书，读十页，然后在社群里说说你读到了什么。明天早上见。

回复关键词「{keyword}」，可以随时找回这篇文章。
"""


def load() -> list[str]:
    """Create the missing demo pieces, one a day at 06:30 for the fourteen days to today."""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    today = articles.today()
    for offset, (keyword, title, summary, column, visibility) in enumerate(PIECES):
        day = today - timedelta(days=len(PIECES) - 1 - offset)
        slug = f"demo-{day:%Y%m%d}"
        if db.session.scalar(select(Article.id).where(Article.slug == slug)) is not None:
            continue
        if articles.article_for_keyword(keyword) is not None:
            continue  # an older demo day holds it
        publish_at = datetime.combine(day, time(6, 30), tzinfo=zone)
        articles.save_article(
            Draft(
                title=title,
                summary=summary,
                body_md=BODY.format(summary=summary, title=title, keyword=keyword),
                slug=slug,
                column=column,
                keywords=keyword,
                visibility=visibility,
                status="published",
                publish_at=publish_at,
            )
        )
    demo = Article.slug.startswith("demo-")
    total = db.session.scalar(select(func.count()).select_from(Article).where(demo))
    add_voices()
    voiced = db.session.scalar(
        select(func.count()).select_from(Article).where(demo, Article.voice_id.is_not(None))
    )
    return [f"演示文章 (demo articles): {total}", f"演示语音 (demo voices): {voiced}"]


def voice_text(article: Article) -> str:
    """What the voice says: the title, the summary and the opening before <!--more-->."""
    opening = article.body_md.split("<!--more-->", 1)[0]
    opening = re.sub(r"[\\#>*_`\[\]]", "", opening)
    return "。".join(part for part in (article.title, article.summary, opening) if part.strip())


def add_voices() -> None:
    """Give every demo piece that has no voice a generated one, saved as a new version with
    its other fields unchanged."""
    missing = db.session.scalars(
        select(Article)
        .where(Article.slug.startswith("demo-"), Article.voice_id.is_(None))
        .order_by(Article.publish_at, Article.id)
    ).all()
    for article in missing:
        data = voices.generate_voice(voice_text(article))
        voice = media.store(media.check_audio(BytesIO(data)), original_name=f"{article.slug}.wav")
        try:
            draft = articles.draft_from(article, utcnow())
            draft.voice_id = voice.id
            articles.save_article(draft, article_id=article.id)
        except articles.ArticleError:
            continue  # an editor's change that no longer saves as it is; left without a voice
