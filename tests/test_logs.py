"""JSON log lines written in batches (flows_graphql/logs.Batched): info lines within
FLUSH_S of each other go out in one write, in order; a warning, a line logged where no
event loop runs, and a flush write at once what waits."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

from flows_graphql import logs


class Stream:
    """Records each write as it comes."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in "".join(self.writes).splitlines()]


@pytest.fixture
def logged() -> tuple[logging.Logger, logs.Batched, Stream]:
    stream = Stream()
    handler = logs.Batched(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("tests.batched")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler, stream


async def test_info_lines_go_out_together_after_a_short_wait(logged) -> None:
    logger, _, stream = logged
    for n in range(3):
        logger.info("request", extra={"n": n})
    assert stream.writes == []
    await asyncio.sleep(logs.FLUSH_S * 3)
    assert len(stream.writes) == 1
    assert [(line["msg"], line["n"]) for line in stream.lines()] == [
        ("request", 0),
        ("request", 1),
        ("request", 2),
    ]


async def test_a_warning_goes_out_at_once_after_what_waits(logged) -> None:
    logger, _, stream = logged
    logger.info("first")
    logger.warning("trouble")
    assert [(line["level"], line["msg"]) for line in stream.lines()] == [
        ("info", "first"),
        ("warning", "trouble"),
    ]
    await asyncio.sleep(logs.FLUSH_S * 3)  # the timer that was set finds nothing to write
    assert len(stream.lines()) == 2


def test_without_an_event_loop_a_line_goes_out_at_once(logged) -> None:
    logger, _, stream = logged
    logger.info("from a thread")
    assert [line["msg"] for line in stream.lines()] == ["from a thread"]
    seen: list[int] = []
    thread = threading.Thread(target=lambda: (logger.info("other"), seen.append(1)))
    thread.start()
    thread.join()
    assert seen == [1]
    assert [line["msg"] for line in stream.lines()] == ["from a thread", "other"]


async def test_a_timer_of_an_ended_loop_does_not_hold_lines_back(logged) -> None:
    logger, handler, stream = logged
    ended = asyncio.new_event_loop()
    handler.due, handler.due_loop = ended.call_later(10, handler.flush), ended
    ended.close()
    logger.info("after")
    await asyncio.sleep(logs.FLUSH_S * 3)
    assert [line["msg"] for line in stream.lines()] == ["after"]


async def test_flush_writes_what_waits(logged) -> None:
    logger, handler, stream = logged
    logger.info("waiting")
    assert stream.writes == []
    handler.flush()
    assert [line["msg"] for line in stream.lines()] == ["waiting"]


def test_request_ids_are_32_random_hex_digits() -> None:
    ids = {logs.new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
