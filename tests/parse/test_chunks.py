"""The chunks stage: whole lines, long lines skipped unread, a byte order mark dropped, read ahead in order."""

from __future__ import annotations

import io

import pytest

from airflow_provider_video_actions.parse.chunks import LongLine, iter_chunks, prefetched


def test_chunks_hold_whole_lines_whatever_the_read_size():
    body = b"".join(b'{"n": %d}\n' % n for n in range(50))
    items = list(iter_chunks(io.BytesIO(b"\xef\xbb\xbf" + body), size=16, max_line_bytes=1024))
    assert b"".join(items) == body and all(item.endswith(b"\n") for item in items)


def test_a_line_past_the_limit_is_only_its_length():
    items = list(iter_chunks(io.BytesIO(b"ok\n" + b"y" * 100 + b"\nlast"), size=8, max_line_bytes=10))
    assert items == [b"ok\n", LongLine(100), b"last"]


def test_read_ahead_keeps_the_order_and_hands_back_a_failure():
    def failing():
        yield 1
        raise OSError("lost")

    assert list(prefetched(iter(range(20)), depth=3)) == list(range(20))
    with pytest.raises(OSError, match="lost"):
        list(prefetched(failing()))
