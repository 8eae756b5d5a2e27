"""A machine whose clock is wrong does not push edits the others would refuse."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from synctools import CountingRemote, log, new_store

import sync
from localfirst import hlc
from localfirst.errors import ClockSkew
from sync import send
from sync.remotes import open_remote

DAY = 86_400


@pytest.mark.parametrize("where", ["folder", "s3"])
@pytest.mark.parametrize("skew", [3 * DAY, -3 * DAY, 3600])
def test_a_clock_far_off_the_remotes_writes_nothing(where: str, skew: int, tmp_path: Path,
                                                     request: pytest.FixtureRequest,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if where == "s3":
        request.getfixturevalue("aws")
        url = "s3://bucket/lf"
    else:
        url = (tmp_path / "remote").as_uri()
        (tmp_path / "remote").mkdir()
    store = new_store()
    sync.add_remote(store, "origin", url)
    log(store, "before")
    sync.sync(store)  # format.json exists
    log(store, "written while the clock was wrong")
    monkeypatch.setattr(send, "_now", lambda: time.time() + skew)
    counting = CountingRemote(open_remote(sync.get_remote(store)))
    with pytest.raises(ClockSkew, match="ahead of" if skew > 0 else "behind"):
        sync.sync(store, client=counting)
    assert counting.calls["put"] == 0
    monkeypatch.setattr(send, "_now", time.time)
    assert sync.sync(store).pushed.changesets == 1


def test_edits_stamped_days_ahead_stay_here_until_their_time(tmp_path: Path, run) -> None:  # noqa: ANN001
    (tmp_path / "remote").mkdir()
    url = (tmp_path / "remote").as_uri()
    store = new_store(tmp_path / "a.db")
    sync.add_remote(store, "origin", url)
    rid = log(store, "x")
    sync.sync(store)
    ahead = time.time_ns() // 1_000_000 + 5 * DAY * 1000
    with store.write() as conn:  # the clock ran five days ahead while this was renamed
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('hlc', ?)",
                     [hlc.format_hlc(ahead, 0, store.host_id)])
    store.rename_conversation(store.get_response(rid).conversation_id, "from the future")
    store.close()
    result = run("--db", str(tmp_path / "a.db"), "sync")
    assert_one_line_error(result, "ahead of the clock of remote 'origin'", "until")
    assert result.code == ClockSkew.exit_code
    other = new_store()
    sync.add_remote(other, "origin", url)
    sync.sync(other)
    assert other.conversations()[0].name != "from the future"
