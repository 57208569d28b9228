"""Tracking-server credentials: MLflow's environment variables only, never anything per_exp writes.

MLflow's client reads `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`
(HTTP basic auth) or `MLFLOW_TRACKING_TOKEN` (bearer) from the environment
of each process that talks to the server; per_exp never reads them into a
config, a param, a tag, an artifact or a log line.

What per_exp does write holds the tracking URI: the resolved config
(`config.yaml`), Hydra's overrides (`hydra/`, the `hydra.overrides` tag), the
sweep file, log lines and the report. So a URI that carries a secret
(`http://user:password@host`, `?password=...`) is refused before anything is
written, and every message that shows it masks the secret.

The server refusing the credentials (HTTP 401) or the user's rights (403) is
turned into one line naming what to set, before any run exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from per_exp.errors import ConfigError

ENV_USERNAME = "MLFLOW_TRACKING_USERNAME"
ENV_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
ENV_TOKEN = "MLFLOW_TRACKING_TOKEN"
MASK = "***"
# query parameters that carry secrets in database and object-store URIs
_SECRET_QUERY = re.compile(r"pass|pwd|token|secret|key|credential|auth", re.IGNORECASE)
_SECRET_KEY = re.compile(r"pass(word|wd)?$|pwd|token|secret", re.IGNORECASE)
_HOW_ENV = f"export {ENV_USERNAME} and {ENV_PASSWORD} (or {ENV_TOKEN}) in the shell instead"
_HOW = (
    f"a URI without a secret in it (it would be written to config.yaml, Hydra's overrides, tags and logs); "
    f"give a tracking server's user in {ENV_USERNAME} and {ENV_PASSWORD} (or {ENV_TOKEN}), "
    "a database's password through its driver (e.g. PGPASSWORD or ~/.pgpass)"
)


def _parts(uri: str):
    try:
        return urlsplit(uri)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: not a URI we can judge, nor one MLflow opens
        return None


def secret_in(uri: str | None) -> bool:
    """Whether `uri` embeds a password (user:password@) or a secret-looking query parameter."""
    if not uri:
        return False
    p = _parts(uri)
    if p is None:
        return "@" in uri
    userinfo = p.netloc.rpartition("@")[0]
    return ":" in userinfo or any(_SECRET_QUERY.search(k) for k, _ in parse_qsl(p.query, keep_blank_values=True))


def redact(uri: str | None) -> str | None:
    """`uri` with any password and secret-looking query value replaced by ***, for messages."""
    if not uri or not secret_in(uri):
        return uri
    p = _parts(uri)
    if p is None:
        return MASK
    userinfo, at, host = p.netloc.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    query = urlencode(
        [(k, MASK if _SECRET_QUERY.search(k) else v) for k, v in parse_qsl(p.query, keep_blank_values=True)],
        safe="*",
    )
    return urlunsplit((p.scheme, f"{userinfo}{at}{host}", p.path, query, p.fragment))


def check_uri(key: str, uri: str | None) -> None:
    """Refuse a URI with a secret in it (ConfigError naming `key`, the value masked)."""
    if secret_in(uri):
        raise ConfigError(key, redact(uri), _HOW)


def check_overrides(overrides: list[str]) -> None:
    """The same check on command-line overrides, before Hydra copies them into its output folder.

    Also refuses a secret given as a Hydra setting (e.g.
    `hydra.job.env_set.MLFLOW_TRACKING_PASSWORD=...`): Hydra writes every
    override to `.hydra/`, which is logged as the run's `hydra/` artifact.
    """
    for ov in overrides:
        key, eq, value = ov.partition("=")
        key = key.lstrip("+~")
        if not eq:
            continue
        if key == "tracking.uri":
            check_uri("tracking.uri", value)
        elif _SECRET_KEY.search(key.rsplit(".", 1)[-1]):
            raise ConfigError(
                key,
                MASK,
                f"no secret on the command line (Hydra writes overrides to .hydra/, logged as an artifact); {_HOW_ENV}",
            )


def _http_status(e: BaseException) -> int | None:
    get = getattr(e, "get_http_status_code", None)
    try:
        return int(get()) if callable(get) else None
    except (TypeError, ValueError):
        return None


def access_error(e: BaseException, uri: str) -> ConfigError | None:
    """The one-line error for a server that refused us (HTTP 401/403), or None for any other failure."""
    status = _http_status(e)
    if status not in (401, 403):
        return None
    user = os.environ.get(ENV_USERNAME) or None
    where = f"the tracking server at {redact(uri)}"
    if status == 403:
        return ConfigError(
            ENV_USERNAME,
            user,
            f"a user of {where} with permission for this experiment (the server answered 403: permission denied)",
        )
    if user is None and not os.environ.get(ENV_TOKEN):
        return ConfigError(
            ENV_USERNAME,
            None,
            f"a user of {where}, with its password in {ENV_PASSWORD} (the server requires authentication: 401)",
        )
    return ConfigError(
        ENV_USERNAME,
        user,
        f"a user of {where} and its password in {ENV_PASSWORD} (the server refused these credentials: 401)",
    )


@contextmanager
def server_access(uri: str) -> Iterator[None]:
    """Turn the server's refusal (401/403) inside the block into the one-line ConfigError."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as e:
        err = access_error(e, uri)
        if err is None:
            raise
        raise err from None
