"""Three machines log, rename, delete, merge and sync in random order, with
partial syncs and crashes, and end with identical databases."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from synctools import Crash, CrashingRemote, dump, log, new_store

import sync
from localfirst.store import Store
from sync.remotes import open_remote

MACHINES = st.integers(0, 2)


class ThreeMachines(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lf-machines-"))
        self.url = f"file://{self.root}/remote"
        self.stores: list[Store] = []
        for i in range(3):
            store = new_store(self.root / f"m{i}.db")
            sync.add_remote(store, "origin", self.url)
            self.stores.append(store)
        self.prompts = 0

    def teardown(self) -> None:
        if not hasattr(self, "root"):
            return
        # Everyone syncs twice round: then every machine has seen everything.
        for _ in range(2):
            for store in self.stores:
                sync.sync(store)
        dumps = [dump(s) for s in self.stores]
        for s in self.stores:
            s.close()
        shutil.rmtree(self.root)
        assert dumps[0] == dumps[1] == dumps[2]

    @rule(i=MACHINES, new=st.booleans(), attach=st.sampled_from([None, b"one", b"two"]))
    def log_exchange(self, i: int, new: bool, attach: bytes | None) -> None:
        store = self.stores[i]
        self.prompts += 1
        cid = None if new else store.last_conversation_id()
        log(store, f"prompt {self.prompts}", cid=cid, attachment=attach)

    @rule(i=MACHINES, kind=st.sampled_from(["rename", "delete response", "delete conversation"]),
          pick=st.integers(0, 10), name=st.sampled_from(["alpha", "beta", "gamma"]))
    def edit(self, i: int, kind: str, pick: int, name: str) -> None:
        store = self.stores[i]
        if kind == "delete response":
            responses = store.list_responses(count=0)
            if responses:
                rid = responses[pick % len(responses)].id
                assert rid is not None
                store.delete([rid])
            return
        found = store.conversations()
        if not found:
            return
        cid = found[pick % len(found)].id
        if kind == "rename":
            store.rename_conversation(cid, name)
        else:
            store.delete(store.select_for_delete(conversation_id=cid), conversation_id=cid)

    @rule(i=MACHINES, kind=st.sampled_from(["push", "pull", "sync", "crash", "merge"]),
          j=MACHINES, at=st.integers(1, 8), after=st.booleans())
    def exchange(self, i: int, kind: str, j: int, at: int, after: bool) -> None:
        """A partial or whole sync, one interrupted by a crash, or a file merge."""
        store = self.stores[i]
        if kind == "push":
            sync.push(store)
        elif kind == "pull":
            sync.pull(store)
        elif kind == "sync":
            sync.sync(store)
        elif kind == "crash":
            crashing = CrashingRemote(open_remote(sync.get_remote(store)), at=at, after=after)
            try:
                sync.sync(store, client=crashing)
            except Crash:
                pass
        elif i != j:
            sync.merge_database(store, self.root / f"m{j}.db")

    @invariant()
    def deleted_keys_stay_deleted(self) -> None:
        for store in getattr(self, "stores", []):
            back = store.conn.execute(
                "SELECT count(*) FROM tombstones t WHERE (t.tbl = 'responses' AND EXISTS "
                "(SELECT 1 FROM responses r WHERE r.id = t.key)) OR (t.tbl = 'conversations' AND EXISTS "
                "(SELECT 1 FROM conversations c WHERE c.id = t.key))"
            ).fetchone()[0]
            assert back == 0


ThreeMachines.TestCase.settings = settings(max_examples=50, stateful_step_count=50, deadline=None)
TestThreeMachines = pytest.mark.slow(ThreeMachines.TestCase)
