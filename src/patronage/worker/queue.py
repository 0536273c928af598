"""The task queue: a huey instance on Redis (production) or on a SQLite file (embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huey import RedisExpireHuey, SqliteHuey
from huey.api import TaskLock
from huey.storage import RedisExpireStorage

from patronage.errors import PatronageError, ValidationFailedError

REDIS_SCHEMES = ("redis", "rediss", "unix")


class QueueUnavailableError(PatronageError):
    """The task queue's storage cannot be reached."""

    status_code = 503
    title = "Service unavailable"


def create_queue(url: str, *, name: str = "patronage", result_ttl_seconds: int = 86_400) -> Any:
    """Return a huey instance on `url`: `redis://host:port/db` or `sqlite:///path/to/file.db`.

    Redis keeps locks with a time-to-live (a crashed worker's lock lapses); the SQLite file
    cannot, so the worker clears the stale locks of a SQLite queue when it starts.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        return RedisExpireHuey(
            name, url=url, expire_time=result_ttl_seconds, results=False, utc=True
        )
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if not path or path == ":memory:":
            raise ValidationFailedError(
                f"PATRONAGE_QUEUE_URL {url!r}: a SQLite queue needs a file, e.g. sqlite:///queue.db"
            )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=path, results=False, utc=True)
    raise ValidationFailedError(
        f"PATRONAGE_QUEUE_URL {url!r}: use redis://HOST:PORT/DB or sqlite:///PATH"
    )


def describe_queue(huey: Any) -> str:
    """A one-line description of where the queue lives (no password)."""
    storage = huey.storage
    if isinstance(storage, RedisExpireStorage):
        kwargs = storage.conn.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"redis {where} db {kwargs.get('db', 0)}, queue {huey.name!r}"
    return f"sqlite {getattr(storage, 'filename', '?')}, queue {huey.name!r}"


def locks_expire(huey: Any) -> bool:
    """Whether the queue's storage lets a lock lapse after a time-to-live."""
    return isinstance(huey.storage, RedisExpireStorage)


def store_lock(huey: Any, group: str, store_id: int, ttl_seconds: int) -> TaskLock:
    """The lock that keeps a store's jobs of one group from running twice at once."""
    return huey.lock_task(
        f"{group}:store:{store_id}", ttl=ttl_seconds if locks_expire(huey) else None
    )


def flush_store_locks(huey: Any) -> list[str]:
    """Release every lock of this queue (a SQLite queue's worker does this when it starts)."""
    prefix = f"{huey.name}.lock."
    names = [key for key in huey.storage.result_items() if str(key).startswith(prefix)]
    for key in names:
        huey.storage.delete_data(key)
    return [str(key).removeprefix(prefix) for key in names]


def check_queue(huey: Any) -> None:
    """Raise QueueUnavailableError unless the queue's storage answers."""
    import sqlite3

    from redis import RedisError

    try:
        if isinstance(huey.storage, RedisExpireStorage):
            huey.storage.conn.ping()
        else:
            huey.pending_count()
    except (RedisError, sqlite3.Error) as error:
        raise QueueUnavailableError(
            f"the task queue ({describe_queue(huey)}) is not reachable: {error}"
        ) from error
