"""Whoosh's segment files read in place, without a copy.

Whoosh 2.7.4 (its last release) maps each compound segment file and hands out its parts as
`BufferFile`s, whose `BytesIO(buf)` copies the part out of the map: every searcher held its own
copy of the whole index on the heap, and every refresh after a post copied the segments anew
(seen as a soak's memory growing with the posts). Here a part is a view of the map, read where
it lies; the pages are the file's, shared by every thread and every worker.
"""

from whoosh.filedb import compound
from whoosh.filedb.structfile import BufferFile

_LINE_CHUNK = 256


class _View:
    """The read side of a file over a memoryview: read, peek, readline, seek, tell, close."""

    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: memoryview) -> None:
        self._buf = buf
        self._pos = 0

    def read(self, size: int | None = -1) -> bytes:
        start = self._pos
        end = len(self._buf) if size is None or size < 0 else min(start + size, len(self._buf))
        if end <= start:
            return b""
        self._pos = end
        return self._buf[start:end].tobytes()

    def peek(self, size: int = 0) -> memoryview:
        """Up to `size` bytes from where it stands (at least one if any are left), without
        moving, as a view: pickle's C loader prefetches with it and then reads only what it
        used, instead of a read call for each few bytes (twenty for a posting block's
        header)."""
        start = self._pos
        return self._buf[start : start + max(size, 1)]

    def readline(self, size: int | None = -1) -> bytes:
        buf, start = self._buf, self._pos
        stop = len(buf) if size is None or size < 0 else min(start + size, len(buf))
        at = start
        while at < stop:
            chunk = buf[at : min(at + _LINE_CHUNK, stop)].tobytes()
            found = chunk.find(b"\n")
            if found >= 0:
                stop = at + found + 1
                break
            at += len(chunk)
        return self.read(stop - start)

    def seek(self, position: int, whence: int = 0) -> int:
        base = (0, self._pos, len(self._buf))[whence]
        if base + position < 0:
            raise ValueError("negative seek position")
        self._pos = base + position
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._buf = memoryview(b"")  # let go of the map: the storage can close it
        self._pos = 0


class ViewFile(BufferFile):
    """A `BufferFile` that reads its buffer in place instead of copying it into a BytesIO."""

    def __init__(self, buf, name=None, onclose=None) -> None:
        self._buf = buf
        self._name = name
        self.file = _View(memoryview(buf))
        self.onclose = onclose
        self.is_real = False
        self.is_closed = False

    def close(self) -> None:
        super().close()
        self._buf = b""


def install() -> None:
    """Make Whoosh's compound storage hand out views. Idempotent; affects this process."""
    compound.BufferFile = ViewFile
