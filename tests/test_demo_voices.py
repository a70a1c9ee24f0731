"""Generated morning voices: spoken by espeak-ng where it is installed, a chime elsewhere; and
`demo load` gives every demo piece one."""

from __future__ import annotations

import io
import shutil
import wave

import pytest
from sqlalchemy import func, select

from app import db
from content import media, voices
from content.models import Article, ArticleRevision, Media
from tests.conftest import html

TEXT = "晨读的第一天。从今天起，每天早上六点半，我们在这里见面。"
HAS_ESPEAK = shutil.which("espeak-ng") is not None


@pytest.fixture
def no_espeak(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *a, **kw: None)


def wav_params(data: bytes):
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getparams()


def assert_a_minute(app, data: bytes) -> None:
    with app.app_context():
        checked = media.check_audio(io.BytesIO(data))
    assert checked.kind == "audio" and checked.ext == "wav"
    assert abs(checked.duration_ms - 60_000) <= 500
    params = wav_params(data)
    assert params.nchannels == 1 and params.sampwidth == 2
    assert params.framerate <= 16000
    assert len(data) <= 1_400_000


def test_the_chime_is_a_minute_and_differs_by_text(app, no_espeak):
    assert voices.espeak_path() is None
    data = voices.generate_voice(TEXT)
    assert_a_minute(app, data)
    assert wav_params(data).framerate == voices.CHIME_RATE
    assert voices.generate_voice(TEXT) == data  # deterministic
    assert voices.generate_voice("保持好奇心") != data
    assert wav_params(voices.generate_voice(TEXT, seconds=5)).nframes == 5 * voices.CHIME_RATE


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
def test_espeak_speaks_the_text_for_a_minute(app):
    data = voices.generate_voice(TEXT)
    assert_a_minute(app, data)
    assert wav_params(data).framerate != voices.CHIME_RATE  # spoken, not chimed
    assert voices.generate_voice(TEXT) == data
    # A text longer than a minute is spoken faster, then cut to the minute.
    assert_a_minute(app, voices.generate_voice(TEXT * 20))


def test_a_failing_espeak_falls_back_to_the_chime(app, monkeypatch):
    monkeypatch.setattr(voices, "espeak_path", lambda: "/nonexistent/espeak-ng")
    data = voices.generate_voice(TEXT)
    assert_a_minute(app, data)
    assert wav_params(data).framerate == voices.CHIME_RATE


def counts() -> tuple[int, int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Media)),
        db.session.scalar(select(func.count()).select_from(ArticleRevision)),
        db.session.scalar(select(func.max(Article.version))),
    )


@pytest.mark.parametrize(
    "espeak",
    [
        pytest.param(
            True, marks=pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
        ),
        False,
    ],
)
def test_demo_load_gives_every_piece_a_voice_once(app, client, monkeypatch, espeak):
    if not espeak:
        monkeypatch.setattr(voices, "espeak_path", lambda: None)
    cli = app.test_cli_runner()
    first = cli.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "演示语音 (demo voices): 14" in first.output
    with app.app_context():
        pieces = db.session.scalars(select(Article).where(Article.slug.startswith("demo-"))).all()
        assert len(pieces) == 14
        for article in pieces:
            assert article.voice is not None and article.voice.kind == "audio"
            assert media.path_of(article.voice).is_file()
            assert abs(article.voice.duration_ms - 60_000) <= 500
            assert article.voice.original_name == f"{article.slug}.wav"
            # Created, then given its voice (and two pieces a product card by the demo shop).
            assert article.version == (3 if "[[product:" in article.body_md else 2)
            assert article.keyword_list and article.status == "published"
        assert len({article.voice_id for article in pieces}) == 14
        before = counts()
    second = cli.invoke(args=["demo", "load"])
    assert second.exit_code == 0, second.output
    assert second.output == first.output
    with app.app_context():
        assert counts() == before
    home = html(client.get("/"))
    assert home.select_one(".today h1").get_text() == "晨读的第一天"
    audio = home.select_one(".today .voice audio")
    assert audio is not None
    response = client.get(audio["src"])
    assert response.status_code == 200
    assert_a_minute(app, response.get_data())
