import os

import pytest
from ulid import ULID

from localfirst import ids


@pytest.fixture(autouse=True)
def restore_generator(monkeypatch):
    """Tests below move the generator far into the future; put it back after."""
    monkeypatch.setattr(ids, "_last_ms", ids._last_ms)
    monkeypatch.setattr(ids, "_last_rand", ids._last_rand)


def test_ids_are_lowercase_ulids_that_python_ulid_reads():
    value = ids.new_id()
    assert len(value) == 26 and value == value.lower()
    assert ids.is_id(value)
    parsed = ULID.from_str(value.upper())
    assert int(parsed.timestamp * 1000) == ids.id_time_ms(value)
    assert str(parsed).lower() == value


def test_strictly_increasing_within_one_millisecond():
    made = [ids.new_id(now_ms=4_000_000_000_000) for _ in range(1000)]
    assert made == sorted(made)
    assert len(set(made)) == 1000
    assert {ids.id_time_ms(m) for m in made} == {4_000_000_000_000}


def test_strictly_increasing_when_the_clock_steps_backwards():
    first = ids.new_id(now_ms=4_100_000_000_000)
    later = [ids.new_id(now_ms=4_100_000_000_000 - step) for step in (1, 1000, 60_000)]
    assert all(first < x for x in later)
    assert later == sorted(later)


def test_random_part_overflow_moves_to_next_millisecond(monkeypatch):
    monkeypatch.setattr(ids, "_last_ms", 4_200_000_000_000)
    monkeypatch.setattr(ids, "_last_rand", ids._RANDOM_MAX)
    value = ids.new_id(now_ms=4_200_000_000_000)
    assert ids.id_time_ms(value) == 4_200_000_000_001


def test_forked_child_never_repeats_parent_ids():
    ids.new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        payload = "\n".join(ids.new_id() for _ in range(500)).encode()
        os.write(write, payload)
        os._exit(0)
    os.close(write)
    parent = [ids.new_id() for _ in range(500)]
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    child = b"".join(chunks).decode().split("\n")
    assert len(child) == 500
    assert not set(parent) & set(child)


@pytest.mark.parametrize(
    "bad", ["", "x" * 26, "01m7xhnvbscbetp2ef6kz6yg5", "81m7xhnvbscbetp2ef6kz6yg5v", "01m7xhnvbscbetp2ef6kz6yg5u",
            "01m7xhnvbscbetp2ef6kz6yg5v\n"]
)
def test_malformed_ids_are_rejected(bad):
    assert not ids.is_id(bad)
