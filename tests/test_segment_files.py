"""Whoosh's segment files read in place (content/segment_files.py): a view of the mapped file
behaves as the copy Whoosh made of it, and searchers hold no copies of the index."""

from __future__ import annotations

import gc
import io
import mmap
import pickle
import random

import pytest
from whoosh.filedb.structfile import BufferFile

from content import articles, search, segment_files
from content.articles import Draft
from tests.conftest import TEST_DATABASE_URL

DATA = (
    b"first line\nsecond\n\n" + pickle.dumps((3, 7, 1.5, "x", 0, 255), -1) + bytes(range(256)) * 9
)


def test_a_view_reads_seeks_and_tells_as_the_copy_did():
    """Every operation Whoosh's readers (and pickle's loader) use, against io.BytesIO over the
    same bytes."""
    rng = random.Random(7)
    view, copy = segment_files._View(memoryview(DATA)), io.BytesIO(DATA)
    for _ in range(2_000):
        op = rng.choice(["read", "read", "readline", "peek", "seek", "seek_cur", "seek_end", "all"])
        if op == "peek":  # what pickle's loader prefetches with: the bytes ahead, unmoved
            size, at = rng.choice([0, 1, 9, 131_072]), copy.tell()
            assert bytes(view.peek(size)) == DATA[at : at + max(size, 1)]
        elif op == "read":
            size = rng.choice([0, 1, 4, 17, 300, 5_000, -1, None])
            assert view.read(size) == copy.read(size)
        elif op == "readline":
            size = rng.choice([-1, 0, 3, 400])
            assert view.readline(size) == copy.readline(size)
        elif op == "seek":
            at = rng.randrange(len(DATA) + 10)
            assert view.seek(at) == copy.seek(at)
        elif op == "seek_cur":
            at = rng.randrange(-view.tell(), 50)
            assert view.seek(at, 1) == copy.seek(at, 1)
        elif op == "seek_end":
            at = rng.randrange(-len(DATA), 5)
            assert view.seek(at, 2) == copy.seek(at, 2)
        else:
            view.seek(0), copy.seek(0)
            assert view.read() == copy.read() == DATA
        assert view.tell() == copy.tell()
    with pytest.raises(ValueError):
        view.seek(-1)


def test_a_view_file_reads_whooshs_structures_in_place():
    data = bytearray(b"\0" * 8 + DATA)
    data[:4] = (1234).to_bytes(4, "big")
    mapped = mmap.mmap(-1, len(data))
    mapped.write(bytes(data))
    f = segment_files.ViewFile(memoryview(mapped)[:], name="part")
    assert f.read_int() == 1234
    f.seek(8)
    assert f.readline() == b"first line\n"
    f.seek(8 + DATA.index(b"\x80"))
    assert f.read_pickle() == (3, 7, 1.5, "x", 0, 255)
    assert f.get(8, 5) == b"first"
    assert f._buf.obj is mapped  # a view of the map, not a copy
    f.close()
    mapped.close()  # nothing holds the map any more


@pytest.mark.skipif(TEST_DATABASE_URL is not None, reason="Whoosh's searchers")
def test_searchers_read_the_segments_in_place(app, client):
    with app.app_context():
        for i in range(3):
            articles.save_article(
                Draft(title=f"罗辑思维第{i}期", body_md="读书。", status="published")
            )
    assert client.get("/search", query_string={"q": "罗辑思维"}).status_code == 200
    with app.app_context():
        reader = search._searcher().reader()
        assert reader.doc_count() == 3
    gc.collect()
    parts = [o for o in gc.get_objects() if isinstance(o, BufferFile) and not o.is_closed]
    assert parts, "the searcher has its segment's parts open"
    assert all(isinstance(part, segment_files.ViewFile) for part in parts)
    assert all(isinstance(part._buf.obj, mmap.mmap) for part in parts)
