"""Uploaded images and voices: checked by what they contain, never by their names.

Images (JPEG, PNG, WebP) are decoded with Pillow, turned upright, stripped of metadata (a phone
photo carries its GPS position) and stored at most `IMAGE_MAX_WIDTH` pixels wide. Voices (MP3,
M4A/AAC, WAV, Ogg) are identified with mutagen, which also gives their duration; they are kept
byte for byte. Files are named by a hash of what is stored, so a URL never changes meaning and
can be cached for a year; the same file uploaded twice is stored once.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, Protocol

import mutagen
from flask import current_app
from mutagen.aac import AAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import db, utcnow, write_transaction
from content.models import Media

IMAGE_MAX_WIDTH = 1080
# Pillow refuses images above twice this many pixels and warns above it; both are refused here.
IMAGE_MAX_PIXELS = 50_000_000
IMAGE_TYPES = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
AUDIO_TYPES: dict[type, tuple[str, str]] = {
    MP3: ("mp3", "audio/mpeg"),
    MP4: ("m4a", "audio/mp4"),
    AAC: ("aac", "audio/aac"),
    WAVE: ("wav", "audio/wav"),
    OggVorbis: ("ogg", "audio/ogg"),
    OggOpus: ("opus", "audio/ogg"),
}
AUDIO_MAX_SECONDS = 3 * 3600


class MediaError(Exception):
    """An upload that is refused; `status` is 413 for too big, 422 for anything else."""

    def __init__(self, message: str, status: int = 422) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class _Checked:
    data: bytes
    kind: str
    ext: str
    content_type: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


def media_dir() -> Path:
    return Path(current_app.config["MEDIA_DIR"])


class MediaStore(Protocol):
    """Where the bytes of uploads live, by name ("ab/ab12….jpg"). Everything in the site
    reaches them through these three calls, so another store (an object store) is one class
    of its own: `put` the checked bytes, `remove` what a failed transaction left, and `path`
    a local file to send (an object store keeps a local copy or makes the send a redirect)."""

    def put(self, name: str, data: bytes) -> bool:
        """Keep `data` under `name`; False when it was kept already (same name, same bytes)."""
        ...

    def remove(self, name: str) -> None: ...

    def path(self, name: str) -> Path: ...


class FolderStore:
    """A folder (MEDIA_DIR): one machine's disk, or a shared folder mounted on every app
    machine and on nginx at the same path (docs/DEPLOY.md). Files appear whole (written
    aside, then renamed), so a reader never sees half a file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def put(self, name: str, data: bytes) -> bool:
        target = self.path(name)
        if target.exists() and target.stat().st_size == len(data):
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        return True

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def media_store() -> MediaStore:
    return FolderStore(media_dir())


def name_of(key: str, ext: str) -> str:
    return f"{key[:2]}/{key}.{ext}"


def path_of(media: Media) -> Path:
    return media_store().path(name_of(media.key, media.ext))


def size_label(size: int) -> str:
    """ "5 MB", "800 KB"."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.4g} MB"
    return f"{max(1, size // 1024)} KB"


def _read(stream: BinaryIO, limit: int, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise MediaError(f"{what}不能超过 {size_label(limit)}。", 413)
    if not data:
        raise MediaError(f"请选择要上传的{what}。")
    return data


def check_image(stream: BinaryIO) -> _Checked:
    data = _read(stream, current_app.config["IMAGE_MAX_BYTES"], "图片")
    refused = MediaError("这个文件不是可用的图片：请上传 JPEG、PNG 或 WebP 格式。")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data))
            fmt = image.format
            if fmt not in IMAGE_TYPES:
                raise refused
            if image.width * image.height > IMAGE_MAX_PIXELS:
                raise MediaError("图片的像素太多了，请缩小后再上传。")
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise refused from None
    except (OSError, SyntaxError, ValueError):
        raise MediaError("图片已损坏或不完整，请重新导出后上传。") from None
    image = ImageOps.exif_transpose(image)
    if image.width > IMAGE_MAX_WIDTH:
        height = max(1, round(image.height * IMAGE_MAX_WIDTH / image.width))
        image = image.resize((IMAGE_MAX_WIDTH, height), Image.Resampling.LANCZOS)
    out = BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=85, optimize=True, progressive=True)
    elif fmt == "PNG":
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "WEBP", quality=85)
    ext, content_type = IMAGE_TYPES[fmt]
    return _Checked(out.getvalue(), "image", ext, content_type, image.width, image.height)


def check_audio(stream: BinaryIO) -> _Checked:
    limit = current_app.config["AUDIO_MAX_BYTES"]
    data = _read(stream, limit, "音频")
    refused = MediaError("这个文件不是可用的音频：请上传 MP3、M4A/AAC、WAV 或 OGG 格式。")
    try:
        found = mutagen.File(BytesIO(data), options=list(AUDIO_TYPES))
    except mutagen.MutagenError:
        raise refused from None
    if found is None or found.info is None:
        raise refused
    if isinstance(found, MP4) and not str(getattr(found.info, "codec", "")).startswith(
        ("mp4a", "alac")
    ):
        raise refused  # a video, or an MP4 with no sound
    seconds = float(getattr(found.info, "length", 0) or 0)
    if not 0 < seconds <= AUDIO_MAX_SECONDS:
        raise MediaError("读不出这段音频的时长：文件可能已损坏，请重新导出后上传。")
    ext, content_type = AUDIO_TYPES[type(found)]
    return _Checked(data, "audio", ext, content_type, duration_ms=round(seconds * 1000))


def store(
    checked: _Checked,
    *,
    original_name: str = "",
    uploaded_by: int | None = None,
    created: list[str] | None = None,
) -> Media:
    """Keep a checked file and its row; the same bytes give back the row already kept.
    The names of files this call wrote are appended to `created`, so that a caller whose
    transaction then fails can `media_store().remove` them."""
    key = hashlib.sha256(checked.data).hexdigest()[:40]
    name = name_of(key, checked.ext)
    if media_store().put(name, checked.data) and created is not None:
        created.append(name)
    existing = db.session.scalar(select(Media).where(Media.key == key))
    if existing is not None:
        return existing
    media = Media(
        key=key,
        kind=checked.kind,
        ext=checked.ext,
        content_type=checked.content_type,
        size=len(checked.data),
        width=checked.width,
        height=checked.height,
        duration_ms=checked.duration_ms,
        original_name=(original_name or "")[-200:],
        uploaded_by=uploaded_by,
        created_at=utcnow(),
    )
    try:
        with write_transaction() as session:
            session.add(media)
    except IntegrityError:
        # Someone stored the same bytes a moment ago.
        return db.session.scalars(select(Media).where(Media.key == key)).one()
    return media


def save_image(stream: BinaryIO, **kw: object) -> Media:
    return store(check_image(stream), **kw)  # type: ignore[arg-type]


def save_audio(stream: BinaryIO, **kw: object) -> Media:
    return store(check_audio(stream), **kw)  # type: ignore[arg-type]
