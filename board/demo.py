"""Demo threads for `flask --app app demo load`: a job post, a hiring post, a reading tip with
answers, a question with an accepted answer and a thread about a daily article, written by two
demo members with nicknames.

The threads are written straight into the tables in one transaction, with times spread over
the last days: going through board/posts.py would trip the rate limit it keeps for people.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from app import db, utcnow, write_transaction
from board import markup
from board.models import Post, Section, Thread, Vote
from content import articles, search
from content.models import SearchQueue
from members import accounts
from members.models import User

MEMBER = "member@example.com"
SECOND_MEMBER = "member2@example.com"
NICKNAMES = {MEMBER: "早起的阿晨", SECOND_MEMBER: "老周读书"}
# The daily piece a thread is about (its keyword), when the content demo has it.
ARTICLE_KEYWORD = "笔记"


@dataclass(frozen=True)
class Answer:
    author: str
    body: str
    hours_after: float
    accepted: bool = False
    voters: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoThread:
    section: str
    author: str
    title: str
    tags: str
    body: str
    days_ago: float
    answers: list[Answer] = field(default_factory=list)
    voters: tuple[str, ...] = ()
    about_article: bool = False


THREADS = [
    DemoThread(
        "qiuzhi",
        SECOND_MEMBER,
        "出版社编辑五年，想转内容运营，坐标上海",
        "求职 内容运营 上海",
        """大家好，我在一家出版社做了五年图书编辑，主要负责社科类选题，从策划、审稿到上市宣传都跟过。

想找的方向：

- 内容运营或知识付费产品的内容策划
- 上海，接受混合办公
- 期望月薪 18k 左右，可以谈

做过的事：策划的《城市的记忆》系列卖了四万多册；给出版社公众号写过两年书评，粉丝从三千涨到五万。

如果你们团队缺人，或者愿意聊聊行业，欢迎回复，我把简历发给你。""",
        days_ago=3.2,
        answers=[
            Answer(
                MEMBER,
                "五年编辑经验转运营很有优势，写作和选题判断都是硬功夫。建议简历里把公众号"
                "涨粉的过程写具体一点：做了什么、用了多久、数据怎么来的。",
                hours_after=5,
                voters=(SECOND_MEMBER,),
            )
        ],
    ),
    DemoThread(
        "zhaopin",
        MEMBER,
        "杭州独立书店招店员兼读书会策划，周末可轮休",
        "招聘 杭州 书店",
        """我们是杭州西湖边的一家独立书店，开了六年，每月办两场读书会。现在招一位店员，兼做活动策划。

**职位要求**

1. 喜欢读书，能跟读者聊得来
2. 会用表格和简单的修图工具
3. 每周工作五天，周末可以轮休

**待遇**：月薪 7k 起，五险一金，店里的书员工价七折。

有兴趣的会员可以在这里回复，或者到店里找店长老陈聊聊。""",
        days_ago=2.5,
    ),
    DemoThread(
        "zhishi",
        SECOND_MEMBER,
        "读书笔记的三个小方法：卡片、复述、行动",
        "读书 笔记 方法",
        """坚持做读书笔记三年，试过很多方法，最后留下来的是这三个：

1. **卡片**：一张卡片只写一个想法，用自己的话写，不抄原文。
2. **复述**：读完一章，合上书，给自己讲三分钟。讲不出来的地方，就是没读懂的地方。
3. **行动**：每本书至少找一件能马上做的小事，写在笔记最后，一周内去做。

> 读书不是为了记住，而是为了改变。

大家都是怎么做笔记的？欢迎分享。""",
        days_ago=1.8,
        voters=(MEMBER,),
        answers=[
            Answer(
                MEMBER,
                "复述这个方法太好用了。我现在每天早上听完 60 秒，会在通勤路上给自己复述一遍，"
                "一个月下来表达能力明显好了。",
                hours_after=2,
                voters=(SECOND_MEMBER,),
            ),
            Answer(
                SECOND_MEMBER,
                "补充一点：卡片最好写上日期和书名页码，以后回头找原文会方便很多。",
                hours_after=6,
            ),
        ],
    ),
    DemoThread(
        "wenda",
        MEMBER,
        "孩子十岁不爱读书，怎样培养阅读习惯？",
        "亲子 阅读 习惯",
        """儿子今年十岁，放学回家只想玩平板。买了很多书，基本没翻过。

试过规定每天读半小时，结果变成了应付差事。有没有过来人分享一下，怎样让孩子自己愿意读？""",
        days_ago=1.1,
        answers=[
            Answer(
                SECOND_MEMBER,
                """我家老大也经历过这个阶段，说说我们的做法：

- **先读他感兴趣的**：他喜欢恐龙，就从恐龙百科开始，不管"有没有用"。
- **大人先读**：晚饭后全家一起读二十分钟，平板放进抽屉。
- **聊而不考**：读完问他"你觉得最有意思的是哪段"，不问"中心思想是什么"。

坚持了两个月，他开始自己找书看了。""",
                hours_after=3,
                accepted=True,
                voters=(MEMBER,),
            ),
            Answer(
                MEMBER,
                "谢谢！今晚就试试全家一起读，平板先收起来。",
                hours_after=4,
            ),
        ],
    ),
    DemoThread(
        "zhishi",
        MEMBER,
        "读完《怎样做读书笔记》，我改了做笔记的习惯",
        "晨读 笔记",
        """今天的文章说"好的笔记不是抄书，而是和作者对话"，一下子说中了我。

以前我的笔记本里全是摘抄，回头看几乎想不起当时为什么抄。从今天起试试在每段摘抄后面写一句自己的看法，哪怕只有一句"我不同意"。

一周后回来汇报效果。""",
        days_ago=0.2,
        about_article=True,
        answers=[
            Answer(
                SECOND_MEMBER,
                "同感！和作者对话的时候，记得也写下你不同意的理由，那往往是最有价值的部分。",
                hours_after=1,
            )
        ],
    ),
]


def _second_member() -> User:
    """member2@example.com, a member, with a password kept beside the other demo logins."""
    user = accounts.find_user(SECOND_MEMBER)
    if user is None:
        password = f"demo-{secrets.token_hex(4)}"
        user = accounts.create_user(SECOND_MEMBER, password)
        path = current_app.config["DATA_DIR"] / "demo-logins.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"{SECOND_MEMBER} {password}\n")
    if not user.is_member:
        accounts.grant_membership(SECOND_MEMBER, "普通会员", 365, reason="演示：社群会员")
    return user


def _nicknames(users: dict[str, User]) -> None:
    with write_transaction() as session:
        for email, user in users.items():
            found = session.get(User, user.id)
            if found is not None and not found.nickname:
                found.nickname = NICKNAMES[email]


def load() -> list[str]:
    """Create the demo threads that are missing (found by title)."""
    member = accounts.find_user(MEMBER)
    if member is None:
        return ["社群演示 (demo board): skipped, member@example.com is missing"]
    users = {MEMBER: member, SECOND_MEMBER: _second_member()}
    _nicknames(users)
    ids = {email: user.id for email, user in users.items()}
    sections = {s.slug: s.id for s in db.session.scalars(select(Section))}
    article = articles.article_for_keyword(ARTICLE_KEYWORD)
    now = utcnow()
    with write_transaction() as session:
        for demo in THREADS:
            if demo.section not in sections:
                continue
            if session.scalar(select(Thread.id).where(Thread.title == demo.title)) is not None:
                continue
            started = now - timedelta(days=demo.days_ago)
            last = started + timedelta(hours=max((a.hours_after for a in demo.answers), default=0))
            thread = Thread(
                section_id=sections[demo.section],
                author_id=ids[demo.author],
                title=demo.title,
                tags=demo.tags,
                article_id=article.id if demo.about_article and article is not None else None,
                answer_count=len(demo.answers),
                last_activity_at=min(last, now),
                created_at=started,
            )
            session.add(thread)
            session.flush()
            written = [
                (
                    Post(
                        thread_id=thread.id,
                        author_id=ids[demo.author],
                        opening=True,
                        body_md=demo.body,
                        body_html=markup.render(demo.body),
                        vote_count=len(demo.voters),
                        created_at=started,
                    ),
                    demo.voters,
                )
            ]
            for reply in demo.answers:
                written.append(
                    (
                        Post(
                            thread_id=thread.id,
                            author_id=ids[reply.author],
                            body_md=reply.body,
                            body_html=markup.render(reply.body),
                            vote_count=len(reply.voters),
                            accepted=reply.accepted,
                            created_at=min(started + timedelta(hours=reply.hours_after), now),
                        ),
                        reply.voters,
                    )
                )
            session.add_all(post for post, _ in written)
            session.flush()
            for post, voters in written:
                session.add_all(
                    Vote(user_id=ids[email], post_id=post.id, created_at=post.created_at)
                    for email in voters
                )
                session.add(SearchQueue(doc=f"post:{post.id}", queued_at=now))
    search.drain_quietly()
    titles = [demo.title for demo in THREADS]
    count = db.session.scalar(
        select(func.count()).select_from(Thread).where(Thread.title.in_(titles))
    )
    return [f"社群演示 (demo board): {count} 个帖子，{SECOND_MEMBER} 的密码在 demo-logins.txt"]
