"""Real services for tests: a one-node Slurm cluster, a PostgreSQL cluster, `mlflow server`.

The fixtures that hand them to tests are in tests/conftest.py:

    slurm_cluster   session   SlurmCluster
        .env        {"SLURM_CONF": ...}: pass it (merged into os.environ) to sbatch/squeue/...
                    and to any process that submits jobs (a submitit_slurm sweep)
        .run(*cmd)  run a Slurm command against this cluster, check=True, text output
        partitions  "main" (default, never preempted) and "low" (preempted by "main", REQUEUE)
    postgres        session   Postgres
        .uri        postgresql://mlflow:mlflow@127.0.0.1:<port>/mlflow
        .new_database() -> URI of a fresh, empty database (one per server keeps tests apart)
    mlflow_server   function  factory: mlflow_server(backend="sqlite", auth=False, workers=1) -> MlflowServer
        backend     "sqlite" (a file in the test's folder) or "postgresql" (a new database
                    in the session's PostgreSQL cluster)
        auth        True: `--app-name basic-auth`, an admin and a second user (`.admin`, `.user`:
                    Credentials(username, password)); requests without them get 401
        MlflowServer .url, .backend_uri, .artifacts (folder), .log (server log file), .proc,
                    .env(creds=None) -> env vars for a client (MLFLOW_TRACKING_URI, and
                    MLFLOW_TRACKING_USERNAME/PASSWORD when creds are given; the certificate to
                    trust under TLS), .admin_client(), .add_user(creds), .stop()
    auth_tls_server module    MlflowServer: basic-auth over TLS (a self-signed certificate for
                    127.0.0.1), NO_PERMISSIONS by default; `.user` is the account tests log in as
        Every server the factory started is stopped (its whole process group) when the test
        ends, pass or fail. Outside pytest: `with start_mlflow_server(folder, uri, auth=True) as s:`.

Where the services come from: scripts/services/slurm.sh and scripts/services/postgres.sh (one
way to start each, shared with `.ci/run` and developers). When `.ci/run` has started them it
exports PER_EXP_SLURM_DIR / PER_EXP_PG_URI and the fixtures use those; otherwise each fixture
starts its own in a fresh folder for this session and stops it at the end.

A service that cannot start fails the tests that need it, with the reason and the log tail.
Outside CI (`CI` unset), and only when the machine truly cannot run it (the scripts exit 3:
not installed and no root to install it), the tests are skipped with that reason instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SLURM_SH = ROOT / "scripts" / "services" / "slurm.sh"
POSTGRES_SH = ROOT / "scripts" / "services" / "postgres.sh"
CANNOT_RUN_HERE = 3  # the scripts' exit code for "this machine cannot run it" (see _unavailable)


def unavailable(reason: str, cannot_run_here: bool) -> None:
    """Fail; skip only outside CI and only when the machine cannot run the service at all."""
    if cannot_run_here and not os.environ.get("CI"):
        pytest.skip(reason)
    pytest.fail(reason, pytrace=False)


def _script(script: Path, action: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), action],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- Slurm


@dataclass
class SlurmCluster:
    state_dir: Path
    env: dict[str, str]
    partitions: tuple[str, ...] = ("main", "low")

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(cmd), env={**os.environ, **self.env}, capture_output=True, text=True, check=check, timeout=timeout
        )


@contextlib.contextmanager
def slurm_cluster_for_session() -> Iterator[SlurmCluster]:
    """The cluster `.ci/run` started (PER_EXP_SLURM_DIR), else a new one for as long as the block runs."""
    given = os.environ.get("PER_EXP_SLURM_DIR")
    owned = not given
    state = (
        Path(given) if given else Path(tempfile.gettempdir()) / f"per_exp-slurm-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    env = {"PER_EXP_SLURM_DIR": str(state)}
    r = _script(SLURM_SH, "status" if given else "start", env)
    if r.returncode != 0:
        if owned:
            _script(SLURM_SH, "stop", env)
        unavailable(
            f"one-node Slurm cluster unavailable ({SLURM_SH.name} {'status' if given else 'start'} "
            f"exited {r.returncode}):\n{r.stderr[-3000:]}",
            r.returncode == CANNOT_RUN_HERE,
        )
    try:
        yield SlurmCluster(state, {"SLURM_CONF": str(state / "etc" / "slurm.conf")})
    finally:
        if owned:
            _script(SLURM_SH, "stop", env)


# ----------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    uri: str

    def new_database(self) -> str:
        """A fresh empty database owned by the `mlflow` role; returns its URI."""
        import psycopg

        name = f"mlflow_{uuid.uuid4().hex[:10]}"
        # autocommit: CREATE DATABASE cannot run inside a transaction
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def postgres_for_session() -> Iterator[Postgres]:
    """The cluster `.ci/run` started (PER_EXP_PG_URI), else a new one for as long as the block runs."""
    given = os.environ.get("PER_EXP_PG_URI")
    if given:
        yield Postgres(given)
        return
    # not under pytest's tmp folder: the server runs as the `postgres` user, who cannot enter root's 0700 folders
    state = Path(tempfile.gettempdir()) / f"per_exp-pg-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = {"PER_EXP_PG_DIR": str(state)}
    r = _script(POSTGRES_SH, "start", env)
    try:
        if r.returncode != 0:
            unavailable(
                f"PostgreSQL unavailable ({POSTGRES_SH.name} start exited {r.returncode}):\n{r.stderr[-3000:]}",
                r.returncode == CANNOT_RUN_HERE,
            )
        uri = _script(POSTGRES_SH, "env", env).stdout.strip().split("=", 1)[1]
        yield Postgres(uri)
    finally:
        _script(POSTGRES_SH, "stop", env)


# ----------------------------------------------------------------------------- mlflow server


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def header(self) -> dict[str, str]:
        token = b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


# the account the auth tests log in as: distinctive strings, so a leak is found by a plain search
TEST_USER = Credentials("perexp-alice-4d1f", "pw-Zx81-qq93-s3cr3t")


@dataclass
class MlflowServer:
    url: str
    backend_uri: str
    artifacts: Path
    log: Path
    proc: subprocess.Popen
    admin: Credentials | None = None
    user: Credentials | None = None
    cert: Path | None = None  # TLS only: the self-signed certificate clients must trust
    _log_file: object | None = field(default=None, repr=False)

    def env(self, creds: Credentials | None = None) -> dict[str, str]:
        e = {"MLFLOW_TRACKING_URI": self.url}
        if creds is not None:
            e |= {"MLFLOW_TRACKING_USERNAME": creds.username, "MLFLOW_TRACKING_PASSWORD": creds.password}
        if self.cert is not None:
            e["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(self.cert)
        return e

    def admin_client(self) -> _AsAdmin:
        """An MlflowClient whose every call carries the admin's credentials (for a test's own checks)."""
        from mlflow.tracking import MlflowClient

        assert self.admin is not None, "admin_client() needs a server started with auth=True"
        with _environ(self.env(self.admin)):
            return _AsAdmin(MlflowClient(tracking_uri=self.url), self.env(self.admin))

    def add_user(self, creds: Credentials) -> None:
        """Create a user through the server's own admin API, as an operator would."""
        assert self.admin is not None, "add_user() needs a server started with auth=True"
        status, text = request(
            self.url + "/api/2.0/mlflow/users/create",
            "POST",
            {"username": creds.username, "password": creds.password},
            self.admin.header(),
            context=self.tls_context(),
        )
        if status != 200:
            raise RuntimeError(f"creating user {creds.username} on {self.url} failed: {status} {text}")

    def tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.cert)) if self.cert is not None else None

    def stop(self) -> None:
        """SIGTERM the server's whole process group (uvicorn workers included), SIGKILL after 20 s."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers that outlived their parent
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class _AsAdmin:
    """MLflow reads credentials from the environment per request: every call runs with the admin's set."""

    def __init__(self, client: Any, env: dict[str, str]):
        self._client, self._env = client, env

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*a: Any, **kw: Any) -> Any:
            with _environ(self._env):
                return attr(*a, **kw)

        return call


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (the `cryptography` package comes with MLflow)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def request(
    url: str,
    method: str = "GET",
    body: dict | None = None,
    headers: dict | None = None,
    timeout: float = 60,
    context: ssl.SSLContext | None = None,
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _wait_healthy(server: MlflowServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.proc.returncode}:\n{_tail(server.log)}")
        try:
            if request(server.url + "/health", timeout=2, context=server.tls_context())[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"mlflow server at {server.url} not healthy after {timeout:.0f} s:\n{_tail(server.log)}")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def launch_mlflow_server(
    folder: Path,
    backend_uri: str,
    auth: bool = False,
    workers: int = 1,
    timeout: float = 120,
    tls: bool = False,
    default_permission: str = "READ",
) -> MlflowServer:
    """Start `mlflow server` on 127.0.0.1 and a free port, wait until /health answers.

    tls: serve HTTPS with a self-signed certificate for 127.0.0.1 (`.cert`; `.env()` makes clients
    trust it). default_permission: what a logged-in user may do on others' experiments (auth only).

    The caller must call `.stop()` (the `mlflow_server` fixture and `start_mlflow_server` do).
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    admin = user = None
    if auth:
        admin = Credentials("admin", "admin-" + uuid.uuid4().hex[:16])
        user = Credentials("alice", "alice-" + uuid.uuid4().hex[:16])
        ini = folder / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\n"
            f"default_permission = {default_permission}\n"
            f"database_uri = sqlite:///{folder / 'basic_auth.db'}\n"
            f"admin_username = {admin.username}\n"
            f"admin_password = {admin.password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # a password check is a deliberately slow hash (PBKDF2); cache good ones per worker so a
            # test's hundreds of requests do not each pay it. Wrong passwords are never cached.
            "auth_cache_ttl_seconds = 300\n"
        )
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        # the auth app's CSRF protection needs a static key (one per server here)
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = uuid.uuid4().hex
        cmd += ["--app-name", "basic-auth"]
    cert = None
    if tls:
        cert, key = _self_signed(folder)
        cmd += ["--uvicorn-opts", f"--ssl-keyfile {key} --ssl-certfile {cert}"]
    log = folder / "server.log"
    log_file = log.open("w")
    proc = subprocess.Popen(
        cmd,
        cwd=folder,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    scheme = "https" if tls else "http"
    server = MlflowServer(
        f"{scheme}://127.0.0.1:{port}", backend_uri, folder / "artifacts", log, proc, admin, None, cert, log_file
    )
    try:
        _wait_healthy(server, timeout)
        if auth:
            assert user is not None
            server.add_user(user)
            server.user = user
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def start_mlflow_server(folder: Path, backend_uri: str, **options: Any) -> Iterator[MlflowServer]:
    """`launch_mlflow_server` as a context manager: the server is stopped when the block ends."""
    server = launch_mlflow_server(folder, backend_uri, **options)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def mlflow_server_factory(folder: Path, postgres: Callable[[], Postgres]) -> Iterator[Callable[..., MlflowServer]]:
    """A function that starts servers under `folder`; every one is stopped when the block ends."""
    started: list[MlflowServer] = []

    def factory(backend: str = "sqlite", auth: bool = False, workers: int = 1) -> MlflowServer:
        where = folder / f"mlflow-server-{len(started)}"
        if backend == "sqlite":
            uri = f"sqlite:///{where / 'mlflow.db'}"
        elif backend == "postgresql":
            uri = postgres().new_database()
        else:
            raise ValueError(f"backend={backend!r}; allowed: 'sqlite', 'postgresql'")
        try:
            server = launch_mlflow_server(where, uri, auth=auth, workers=workers)
        except RuntimeError as e:
            unavailable(f"mlflow server ({backend}{', basic-auth' if auth else ''}) did not start: {e}", False)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for s in started:
            s.stop()
