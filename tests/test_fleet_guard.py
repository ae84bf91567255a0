"""The single-scheduler guard: one ``schedule`` per fleet, against a real redis-server."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
import redis
from cliutil import spawn_cli, write_config
from redisserver import RedisServer, free_port

from crawler.errors import LockedError, StorageError
from crawler.fleet.guard import KEY_PREFIX, SchedulerGuard, hold_scheduler, redacted

KEY = KEY_PREFIX + "citearchive"


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def test_second_holder_is_refused_and_release_frees_the_lock(redis_url: str) -> None:
    with hold_scheduler(redis_url, "citearchive") as first:
        assert client(redis_url).get(KEY).decode() == first.holder
        with (
            pytest.raises(LockedError, match="another scheduler already runs") as refused,
            hold_scheduler(redis_url, "citearchive"),
        ):
            pytest.fail("a second scheduler got the lock")
        # The refusal names who holds it, without the private suffix.
        assert first.holder.split(" #")[0] in str(refused.value)
        assert "#" not in str(refused.value)
        with hold_scheduler(redis_url, "another-queue"):  # one lock per queue
            pass
    assert client(redis_url).get(KEY) is None
    with hold_scheduler(redis_url, "citearchive"):
        pass


def test_a_dead_holders_lock_is_taken_once_its_ttl_runs_out(redis_url: str) -> None:
    dead = SchedulerGuard(redis_url, "citearchive", ttl_s=20)
    dead.acquire()
    dead._stop.set()  # killed with -9: no more renewals, no release
    dead._thread.join()
    with (
        pytest.raises(LockedError, match=dead.holder.split(" #")[0]),
        hold_scheduler(redis_url, "citearchive"),
    ):
        pass
    assert 0 < client(redis_url).pttl(KEY) <= 20_000  # the key it left expires by itself
    client(redis_url).pexpire(KEY, 0)  # fast-forward to the end of that TTL
    with hold_scheduler(redis_url, "citearchive") as guard:
        assert client(redis_url).get(KEY).decode() == guard.holder
        assert 0 < client(redis_url).pttl(KEY) <= 30_000


def test_renewal_takes_the_lock_back_after_a_redis_restart(
    redis_server: RedisServer, redis_url: str
) -> None:
    with hold_scheduler(redis_url, "citearchive") as guard:
        redis_server.restart()  # no persistence: the key is gone
        assert client(redis_url).get(KEY) is None
        assert guard.renew() is True
        assert client(redis_url).get(KEY).decode() == guard.holder


def test_a_scheduler_that_lost_its_lock_is_told_to_stop(redis_url: str) -> None:
    lost = threading.Event()
    guard = SchedulerGuard(redis_url, "citearchive", ttl_s=0.3, on_lost=lost.set)
    guard.acquire()
    try:
        # Its key expired and another scheduler took the lock meanwhile.
        client(redis_url).set(KEY, "other-host pid 2 #other", px=60_000)
        assert lost.wait(timeout=30)
    finally:
        guard.release()
    # Releasing never deletes another scheduler's lock.
    assert client(redis_url).get(KEY) == b"other-host pid 2 #other"


def test_no_redis_is_a_storage_error_naming_it_without_its_password() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with (
        pytest.raises(StorageError, match="did not answer") as failed,
        hold_scheduler(url, "citearchive"),
    ):
        pytest.fail("held a lock in no Redis")
    assert "127.0.0.1" in str(failed.value) and "hunter2" not in str(failed.value)
    assert redacted("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"


def test_second_schedule_command_exits_5_with_one_line(
    tmp_path: Path, redis_url: str, s3_bucket: str
) -> None:
    extra = f'\n[queue]\nbroker = "{redis_url}"\n\n[schedule]\ncheck_seconds = 3600\n'
    config = write_config(tmp_path / "citearchive.toml", f"s3://{s3_bucket}/a", extra=extra)
    first = spawn_cli(config, "schedule")
    try:
        assert first.stderr is not None
        for line in first.stderr:  # the guard is held before the loop starts
            if "scheduler started" in line:
                break
        else:
            pytest.fail(f"first scheduler ended: {first.wait()}")
        second = spawn_cli(config, "schedule")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 5, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "another scheduler already runs" in lines[0], err
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 0
    assert client(redis_url).get(KEY) is None  # released on exit
