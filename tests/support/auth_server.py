"""A real `mlflow server --app-name basic-auth` on 127.0.0.1, started and stopped by the test.

Its stores, auth database and (optionally) a self-signed certificate for
127.0.0.1 live in a temp folder; `AuthServer.add_user` creates users through
the server's own admin API, as an operator would.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.sweeps import free_port

ADMIN = "admin"
ADMIN_PASSWORD = "adm1n-Pw-7c4e9b2f"
# the user the tests log in as: distinctive strings, so a leak is found by a plain search
TEST_USER = "perexp-alice-4d1f"
TEST_PASSWORD = "pw-Zx81-qq93-s3cr3t"


@dataclass
class AuthServer:
    url: str
    root: Path
    cert: Path | None  # the CA file clients must trust (TLS only)

    def env(self, user: str | None, password: str | None) -> dict[str, str]:
        """Environment for a client process: the credentials (or none) and the certificate to trust."""
        env = {}
        if user is not None:
            env["MLFLOW_TRACKING_USERNAME"] = user
        if password is not None:
            env["MLFLOW_TRACKING_PASSWORD"] = password
        if self.cert:
            env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(self.cert)
        return env

    def admin_client(self):
        """An MlflowClient logged in as the admin (for the test's own checks)."""
        from mlflow.tracking import MlflowClient

        with _env(self.env(ADMIN, ADMIN_PASSWORD)):
            client = MlflowClient(tracking_uri=self.url)
        return _AsAdmin(client, self)

    def add_user(self, name: str, password: str) -> None:
        import mlflow.server

        with _env(self.env(ADMIN, ADMIN_PASSWORD)):
            mlflow.server.get_app_client("basic-auth", tracking_uri=self.url).create_user(name, password)


class _AsAdmin:
    """Every call made with the admin's credentials in the environment (MLflow reads them per request)."""

    def __init__(self, client, server: AuthServer):
        self._client, self._server = client, server

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*a, **kw):
            with _env(self._server.env(ADMIN, ADMIN_PASSWORD)):
                return attr(*a, **kw)

        return call


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _self_signed(root: Path) -> tuple[Path, Path]:
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
    cert_path, key_path = root / "cert.pem", root / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _wait_healthy(url: str, proc: subprocess.Popen, cert: Path | None, timeout: float = 120) -> None:
    ctx = ssl.create_default_context(cafile=str(cert)) if cert else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2, context=ctx) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"mlflow server at {url} not healthy after {timeout} s")


@contextmanager
def auth_server(root: Path, tls: bool = False) -> Iterator[AuthServer]:
    """Start the server in `root`, yield it, stop it (its whole process group) whatever happens."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "auth.ini").write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # without the cache every request pays a PBKDF2 check (most of a job's time on 2 busy cores)
        "auth_cache_ttl_seconds = 60\n"
    )
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'store.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    cert = None
    if tls:
        cert, key = _self_signed(root)
        cmd += ["--uvicorn-opts", f"--ssl-keyfile {key} --ssl-certfile {cert}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env.update(
        {
            "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-csrf-key",
        }
    )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(url, proc, cert)
        yield AuthServer(url, root, cert)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)  # uvicorn waits on idle keep-alive connections; the stores are SQLite
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        log.close()
