"""The tracking store and the checkpoint folder, checked before any run exists, and set up safely.

Three jobs, all at the edge of a launch:

- `check_uri`: the store kinds per_exp supports. Claims (`per_exp.claims`)
  need a store that refuses a second value for a param atomically: SQLite,
  a tracking server, PostgreSQL. MLflow's file store writes params as plain
  files without a lock, so it is refused.
- `check_store` / `check_folder`: the store answers and can be written, the
  checkpoint folder can be written and has room, each refused in one line
  (`ConfigError`, exit 2) instead of a traceback after the first run exists.
- `setup_lock`: the first use of a SQLite file (MLflow creates or migrates
  its schema then) under a file lock, so that concurrent launches on a fresh
  file do not race in the migration (measured: 7 of 8 processes crash
  without it). `tracking.client_for` takes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from per_exp.config import ConfigError

SQLITE = "sqlite:///"
SUPPORTED = (
    "sqlite:///<file>, http(s)://<server>[:port] or postgresql://<user>@<host>[:port]/<database> "
    "(a password never in the URI: PGPASSWORD or ~/.pgpass)"
)
# Less room than this and a launch is refused: a checkpoint of the default replay capacity is
# about 1 MB, an MLflow run's rows a few kB; the margin keeps the disk from filling mid-run.
MIN_FREE_BYTES = 32 * 2**20


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""


def check_uri(uri: str) -> None:
    """Refuse a store kind per_exp cannot coordinate through (see the module's docstring)."""
    scheme = _scheme(uri)
    if scheme == "sqlite" and uri.startswith(SQLITE) and len(uri) > len(SQLITE):
        return
    if scheme in ("http", "https") and len(uri.split("://", 1)[1].strip("/")) > 0:
        return
    if scheme == "postgresql" and len(uri.split("://", 1)[1]) > 0:
        return
    why = ""
    if scheme in ("", "file"):
        why = " (a file store cannot hold claims atomically: its params are files written without a lock)"
    raise ConfigError("tracking.uri", uri, SUPPORTED + why)


def sqlite_file(uri: str) -> Path | None:
    return Path(uri[len(SQLITE) :]) if uri.startswith(SQLITE) else None


def _probe_write(folder: Path) -> str | None:
    """None if a file can be created, written, synced and removed in `folder`, else why not."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".per_exp-probe-") as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return e.strerror or str(e)
    return None


def _room(folder: Path) -> str | None:
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        return f"{free / 2**20:.1f} MB free, at least {MIN_FREE_BYTES // 2**20} MB needed"
    return None


def _existing(folder: Path) -> Path:
    """`folder`, or the nearest folder above it that exists (where it would be created)."""
    p = folder.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_folder(key: str, value: object, folder: Path) -> None:
    """`folder` (or, if it does not exist yet, the folder it would be made in) can be written and has
    room; else ConfigError naming `key`. Nothing is left behind."""
    where = _existing(folder)
    if not where.is_dir():
        raise ConfigError(key, value, f"a folder ({where} is not one)")
    why = _probe_write(where) or _room(where)
    if why:
        raise ConfigError(key, value, f"a folder this process can write, with room ({where}: {why})")


def check_store(uri: str, timeout: float) -> None:
    """The store can be reached (a server answers within `timeout` s) and, for SQLite, written."""
    check_uri(uri)
    path = sqlite_file(uri)
    if path is not None:
        check_folder("tracking.uri", uri, path.parent)
        if path.exists():
            try:
                with open(path, "r+b"):
                    pass
            except OSError as e:
                raise ConfigError("tracking.uri", uri, f"a SQLite file this process can write ({e.strerror})") from None
        return
    if _scheme(uri) in ("http", "https"):
        import requests

        try:
            # TLS as MLflow's client does it: its CA bundle, client certificate and insecure switch
            requests.get(uri.rstrip("/") + "/health", timeout=timeout, verify=_verify(), cert=_client_cert())
        except requests.RequestException as e:
            short = " ".join(str(e).split())[:200]
            raise ConfigError(
                "tracking.uri", uri, f"a tracking server that answers within {timeout:.0f} s ({short})"
            ) from None
        # any HTTP answer will do (a proxy may not route /health): the server is there
    if _scheme(uri) == "postgresql":
        _probe_database(uri, timeout)


def _probe_database(uri: str, timeout: float) -> None:
    """One connection attempt, bounded by `timeout`: MLflow's own engine set-up retries a database
    that refuses for about 100 s, whatever the reason (down, wrong password, no such database)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        uri, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": max(1, int(timeout))}
    )
    try:
        with engine.connect():
            pass
    except Exception as e:
        short = " ".join(str(getattr(e, "orig", None) or e).split())[:200]
        raise ConfigError(
            "tracking.uri", uri, f"a database that accepts this connection within {timeout:.0f} s ({short})"
        ) from None
    finally:
        engine.dispose()


def _verify() -> bool | str:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


def _client_cert() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None


@contextlib.contextmanager
def setup_lock(uri: str) -> Iterator[None]:
    """Held while a process opens a SQLite store (MLflow creates or migrates it then); no-op for a server.

    The lock file sits next to the database; like SQLite itself it needs a local
    file system (or one whose locks work, which NFS does not promise).
    """
    path = sqlite_file(uri)
    if path is None:
        yield
        return
    try:
        f = open(path.with_name(path.name + ".per_exp-setup.lock"), "a")  # noqa: SIM115 (closed below)
    except OSError:  # a folder we may only read: nothing to set up there, and nothing to lock
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# MLflow's HTTP client retries a failed request with exponential back-off: with its defaults
# (7 retries, factor 2, 120 s timeout) a dead server keeps a job waiting for many minutes.
_RETRIES, _BACKOFF_FACTOR = 3, 1  # back-off sleeps 0, 2, 4 s (+ up to 1 s jitter each)
_BACKOFF_TOTAL = 9


def bound_http(seconds: float) -> None:
    """Make one MLflow HTTP call give up within about `seconds` (unless the user set MLflow's own
    variables): 4 attempts of a bounded timeout, plus the back-off between them."""
    per_attempt = max(2, int((seconds - _BACKOFF_TOTAL) / (_RETRIES + 1)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(_RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", str(_BACKOFF_FACTOR))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(per_attempt))


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


_UNREACHABLE = ("Max retries exceeded", "ConnectionError", "Connection refused", "Read timed out", "ConnectTimeout")


def is_unreachable(e: BaseException) -> bool:
    """The store did not answer: a connection refused or reset, a timeout, retries exhausted."""
    for x in _chain(e):
        text = f"{type(x).__name__}: {x}"
        if isinstance(x, (ConnectionError, TimeoutError)) or any(s in text for s in _UNREACHABLE):
            return True
    return False


def is_disk_full(e: BaseException) -> bool:
    """A write failed for lack of room: ENOSPC, or SQLite's 'database or disk is full'."""
    import errno

    for x in _chain(e):
        if isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(x) or "No space left on device" in str(x):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Opened:
    """A store ready for a launch's jobs: its client, the experiment, the experiment's claims registry."""

    client: Any
    experiment_id: str
    registry: Any  # per_exp.claims.Registry


def open_for_launch(uri: str, experiment: str, timeout: float) -> Opened:
    """Check the store, then create or migrate it (under the set-up lock: `tracking.client_for`), the
    experiment and its claims registry (both safe against a concurrent creator). Bad or
    unreachable stores are ConfigError (one line, exit 2)."""
    from per_exp import tracking
    from per_exp.claims import Registry

    bound_http(timeout)
    check_store(uri, timeout)
    try:
        client = tracking.client_for(uri)
        exp_id = tracking.ensure_experiment(client, experiment)
        return Opened(client, exp_id, Registry.open(client, exp_id))
    except ConfigError:
        raise
    except Exception as e:
        db_down = sqlite_file(uri) is None and any(type(x).__name__ == "OperationalError" for x in _chain(e))
        if is_unreachable(e) or db_down:
            short = " ".join(str(e).split())[:200]
            raise ConfigError("tracking.uri", uri, f"a store that answers ({type(e).__name__}: {short})") from None
        raise
