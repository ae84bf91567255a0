"""Leases on SQLite and PostgreSQL: one holder per source, expiry, and real races.

The races run in separate processes (forked, each with its own Index and connections),
released together by a barrier, as workers on two machines would be.
"""

from __future__ import annotations

import multiprocessing
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from crawler.errors import StorageError
from storage.archive import StoredManifest
from storage.ids import format_rfc3339, source_id
from storage.index import Index
from storage.leases import Leases, leases_table
from storage.outbox import Outbox
from storage.runlog import RunLog

SINCE = "2026-11-27T00:00:00Z"
RACERS = 4


def record(n: int) -> dict:
    url = f"https://lease{n}.example/page"
    return {"id": source_id(url), "canonical_url": url, "urls": [url], "added_at": SINCE}


def captured(sid: str, at: str, capture_id: str) -> StoredManifest:
    """What the pipeline records after a capture (the index reads no blob of it)."""
    manifest = {
        "id": capture_id,
        "source_id": sid,
        "captured_at": at,
        "verdict": "new",
        "artifacts": {},
    }
    return StoredManifest(f"captures/{sid}/{capture_id}.json", "0" * 64, manifest)


@pytest.fixture
def index(index_url):
    with Index(index_url) as idx:
        yield idx


@pytest.fixture
def ids(index) -> list[str]:
    sources = [record(n) for n in range(6)]
    index.upsert_sources(sources)
    return sorted(s["id"] for s in sources)


def expire(index: Index, sid: str) -> None:
    """Its holder died an hour ago: the lease's time ran out without a release."""
    past = format_rfc3339(datetime.now(UTC) - timedelta(hours=1))
    with index.engine.begin() as conn:
        conn.execute(
            sa.update(leases_table).where(leases_table.c.source_id == sid).values(expires_at=past)
        )


def expiry(index: Index, sid: str) -> str:
    with index.engine.connect() as conn:
        query = sa.select(leases_table.c.expires_at).where(leases_table.c.source_id == sid)
        return conn.execute(query).scalar_one()


def test_one_holder_per_source_until_released(index, ids):
    leases = Leases(index)
    assert leases.take(ids[:4], "w1", 60, not_captured_since=SINCE) == ids[:4]
    assert leases.take(ids, "w2", 60, not_captured_since=SINCE) == ids[4:]
    assert leases.take(ids, "w1", 60, not_captured_since=SINCE) == []  # w1 too: no re-take
    assert leases.live_count() == 6
    leases.release(ids[:2], "w2")  # not w2's: nothing happens
    assert leases.live_count() == 6
    leases.release(ids[:2], "w1")
    assert leases.live_count() == 4
    assert leases.take(ids, "w3", 60, not_captured_since=SINCE) == ids[:2]
    assert leases.expired() == []


def test_only_sources_still_due_are_taken(index, ids):
    leases = Leases(index)
    index.record_capture(captured(ids[0], "2026-11-27T10:00:00Z", "after"))  # done already
    index.record_capture(captured(ids[1], "2026-11-26T10:00:00Z", "before"))  # due again
    index.upsert_source({**record(5), "removed_at": "2026-11-27T00:00:00Z"})  # unregistered
    removed = source_id(record(5)["canonical_url"])
    unknown = "f" * 32
    taken = leases.take([*ids, unknown], "w1", 60, not_captured_since="2026-11-27T09:00:00+00:00")
    assert taken == sorted(set(ids) - {ids[0], removed})
    # The boundary: captured exactly at the cutoff counts as captured since.
    leases.release(ids, "w1")
    assert leases.take([ids[0]], "w1", 60, not_captured_since="2026-11-27T10:00:00Z") == []
    with pytest.raises(ValueError):
        leases.take(ids, "w1", 60, not_captured_since="yesterday")
    with pytest.raises(ValueError):
        leases.take(ids, "w1", 0, not_captured_since=SINCE)
    with pytest.raises(ValueError):
        leases.take(ids, "w" * 201, 60, not_captured_since=SINCE)
    assert leases.live_count() == 0


def test_an_expired_lease_is_listed_and_taken_over(index, ids):
    leases = Leases(index)
    leases.take(ids[:3], "dead", 60, not_captured_since=SINCE)
    expire(index, ids[1])
    assert leases.expired() == [ids[1]]
    assert leases.live_count() == 2
    assert leases.take(ids[:3], "alive", 60, not_captured_since=SINCE) == [ids[1]]
    assert leases.expired() == []
    assert leases.live_count() == 3
    # The dead holder, back late, can neither release nor renew what it lost.
    leases.release([ids[1]], "dead")
    leases.renew([ids[1]], "dead", 3600)
    assert leases.take([ids[1]], "third", 60, not_captured_since=SINCE) == []
    expire(index, ids[1])
    leases.renew([ids[1]], "dead", 3600)
    assert leases.expired() == [ids[1]]


def test_a_redelivered_task_ends_the_dead_holders_leases_on_what_it_captured(index, ids):
    leases = Leases(index)
    assert leases.take(ids[:4], "dead", 60, not_captured_since=SINCE) == ids[:4]
    index.record_capture(captured(ids[0], "2026-11-27T10:00:00Z", "before-death"))
    for sid in ids[:4]:
        expire(index, sid)
    # The same task again: the captured source is not due, the other three are taken over.
    assert leases.take(ids[:4], "alive", 60, not_captured_since=SINCE) == ids[1:4]
    assert leases.expired() == []
    assert leases.live_count() == 3
    # Only expired leases on sources no longer due end: a live one stays with its holder.
    index.record_capture(captured(ids[1], "2026-11-27T10:00:00Z", "alive-done"))
    assert leases.take(ids[:4], "third", 60, not_captured_since=SINCE) == []
    assert leases.live_count() == 3


def test_dead_holders_and_their_batch_records(index, ids):
    leases, runs = Leases(index), RunLog(index)
    leases.take(ids[:3], "dead/1/t", 60, not_captured_since=SINCE)
    leases.take(ids[3:5], "alive/2/u", 60, not_captured_since=SINCE)
    batch = runs.start("batch", 3, worker="dead@host", lease_holder="dead/1/t")
    assert leases.dead_holders(ids) == {}
    for sid in (*ids[:2], ids[3]):
        expire(index, sid)
    assert leases.dead_holders(ids) == {"dead/1/t": ids[:2], "alive/2/u": [ids[3]]}
    assert runs.running_batch("dead/1/t").id == batch
    runs.finish(batch, "killed", {"new": 1}, ["taken over"], ["c1"])
    assert runs.running_batch("dead/1/t") is None
    # Its worker, back late, does not reopen or rewrite the record.
    runs.finish(batch, "ok", {"new": 3}, [], ["c1", "c2", "c3"])
    [record] = runs.recent()
    assert (record.status, record.captures, record.lease_holder) == ("killed", ["c1"], "dead/1/t")


def test_renew_moves_only_the_holders_expiry(index, ids):
    leases = Leases(index)
    leases.take(ids[:2], "w1", 60, not_captured_since=SINCE)
    leases.take(ids[2:3], "w2", 60, not_captured_since=SINCE)
    before = [expiry(index, sid) for sid in ids[:3]]
    leases.renew(ids[:3], "w1", 7200)
    after = [expiry(index, sid) for sid in ids[:3]]
    assert after[0] > before[0] and after[1] > before[1]
    assert after[2] == before[2]
    assert parse_gap(before[0], after[0]) > timedelta(minutes=59)


def parse_gap(a: str, b: str) -> timedelta:
    return datetime.fromisoformat(b) - datetime.fromisoformat(a)


def test_leases_survive_a_rebuild_of_the_sources(index, ids, tmp_path):
    """reindex replaces sources and captures; leases in hand stay (no foreign key)."""
    from storage.archive import Archive
    from storage.objectstore import open_store

    leases = Leases(index)
    leases.take(ids[:2], "w1", 60, not_captured_since=SINCE)
    index.rebuild(Archive(open_store((tmp_path / "empty-store").as_uri())))
    assert index.list_sources() == []
    assert leases.live_count() == 2


def _race_take(url, ids, holder, barrier, results):
    with Index(url) as index:
        mine = list(ids)
        random.Random(holder).shuffle(mine)  # every racer in its own order
        barrier.wait(timeout=60)
        results.put((holder, Leases(index).take(mine, holder, 60, not_captured_since=SINCE)))


def _race_capture(url, ids, holder, barrier, results):
    """A duplicated task: lease one source, capture it, release; for every source."""
    with Index(url) as index:
        leases = Leases(index)
        done = []
        barrier.wait(timeout=60)
        for sid in ids:
            if leases.take([sid], holder, 60, not_captured_since=SINCE) != [sid]:
                continue
            at = format_rfc3339(datetime.now(UTC))
            index.record_capture(captured(sid, at, f"{holder}-{sid[:8]}"))
            leases.release([sid], holder)
            done.append(sid)
        results.put((holder, done))


def race(target, url: str, ids: list[str]) -> dict[str, list[str]]:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(RACERS), context.Queue()
    procs = [
        context.Process(target=target, args=(url, ids, f"racer{n}", barrier, results))
        for n in range(RACERS)
    ]
    for proc in procs:
        proc.start()
    got = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return got


@pytest.fixture
def many(index) -> list[str]:
    sources = [record(n) for n in range(100, 160)]
    index.upsert_sources(sources)
    return sorted(s["id"] for s in sources)


def test_racers_for_the_same_sources_get_each_exactly_once(index, index_url, many):
    got = race(_race_take, index_url, many)
    taken = [sid for ids in got.values() for sid in ids]
    assert sorted(taken) == many  # every source once: none lost, none twice
    assert Leases(index).live_count() == len(many)


def test_duplicated_tasks_capture_each_source_once(index, index_url, many):
    got = race(_race_capture, index_url, many)
    assert sorted(sid for ids in got.values() for sid in ids) == many
    for sid in many:
        assert len(index.captures(sid)) == 1
    assert Leases(index).live_count() == 0


def _race_tables(url, ids, holder, barrier, results):
    """A worker's first task on a fresh database: the run log and the outbox made at once."""
    with Index(url) as index:
        barrier.wait(timeout=60)
        try:
            RunLog(index).start("batch", 1, worker=holder)
            Outbox(index)
            results.put((holder, ["ok"]))
        except StorageError as exc:
            results.put((holder, [str(exc)]))


def test_workers_starting_at_once_all_get_the_run_log_and_outbox(index_url: str) -> None:
    got = race(_race_tables, index_url, [])
    assert got == {f"racer{n}": ["ok"] for n in range(RACERS)}
    with Index(index_url) as index:
        assert len(RunLog(index).recent()) == RACERS
