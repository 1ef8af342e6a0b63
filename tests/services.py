"""Real PostgreSQL, Redis and S3 (moto) servers for integration tests.

This pytest plugin starts the services on loopback only, once per test session, and
stops them when the session ends. Load it with ``pytest_plugins = ["tests.services"]``.

Fixtures:

* ``postgres_url`` (session): SQLAlchemy URL of a fresh PostgreSQL server's test database.
* ``postgres_db_url`` (function): SQLAlchemy URL of a new, uniquely named database that is
  dropped after the test.
* ``s3_endpoint`` (session): ``http://127.0.0.1:PORT`` of a moto S3 server; the AWS_*
  environment variables point at it while the session runs.
* ``s3_bucket_url`` (function): ``s3://BUCKET/prefix`` in a new, uniquely named bucket.
* ``redis_url`` (session): ``redis://127.0.0.1:PORT/0`` of a Redis server (no persistence).
* ``redis_db_url`` (function): the same URL, its database flushed before the test.
* ``ray_address`` (session): ``127.0.0.1:PORT`` of a local Ray head (2 CPUs, no dashboard),
  started with ``ray start --head --block`` in a session of its own and stopped by ending
  that session's processes; ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps the head and its
  drivers on loopback while the session runs.

Environment:

* ``PLINTH_TEST_POSTGRES_URL``: use this PostgreSQL server instead of starting one.
* ``PLINTH_TEST_S3_ENDPOINT``: use this S3 endpoint instead of starting moto.
* ``PLINTH_TEST_REDIS_URL``: use this Redis server instead of starting one (its database is
  flushed before each test that uses it).
* ``PLINTH_TEST_RAY_ADDRESS``: use this Ray cluster instead of starting a head.
* ``CI`` set to ``true`` or ``1``: a service that cannot be started fails the tests
  instead of skipping them.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

POSTGRES_START_TIMEOUT = 30.0
S3_START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 20
TEST_DATABASE = "plinth_test"
SUPERUSER = "postgres"
FALLBACK_SYSTEM_USER = "plinthpg"

_AWS_ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
)


class ServiceError(RuntimeError):
    """A service could not be started."""


def _is_ci() -> bool:
    """Return True when running under continuous integration (``CI`` is true or 1)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def _unavailable(service: str, reason: str) -> NoReturn:
    """Skip the test locally, or fail it in CI, because a service is not available."""
    message = f"{service} is not available: {reason}"
    if _is_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last lines of a log file, or an empty string if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail)


def _with_log(reason: str, log: Path) -> str:
    """Append the tail of a log file to an error message."""
    tail = _log_tail(log)
    return f"{reason}\n--- last lines of {log} ---\n{tail}" if tail else reason


def _make_tempdir(prefix: str) -> Path:
    """Create a private temporary directory with a short path (unix sockets need one)."""
    base = tempfile.gettempdir()
    if len(base) > 60 and os.path.isdir("/tmp"):
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@dataclass
class _RunAs:
    """The unprivileged user that server processes run as (None means the current user)."""

    uid: int | None = None
    gid: int | None = None
    name: str | None = None

    def popen_kwargs(self) -> dict[str, object]:
        """Return ``subprocess.Popen`` keyword arguments that switch to this user."""
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


@dataclass
class _Service:
    """A running server process together with its temporary directory."""

    name: str
    process: subprocess.Popen[bytes]
    tempdir: Path
    stop_signal: int = signal.SIGTERM
    log_files: list[object] = field(default_factory=list)
    stopped: bool = False

    def stop(self) -> None:
        """Stop the process (graceful signal, then SIGKILL) and delete the temp dir."""
        if self.stopped:
            return
        self.stopped = True
        _terminate(self.process, self.stop_signal)
        for handle in self.log_files:
            with contextlib.suppress(Exception):
                handle.close()  # type: ignore[attr-defined]
        shutil.rmtree(self.tempdir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _RUNNING.remove(self)


_RUNNING: list[_Service] = []


def _terminate(process: subprocess.Popen[bytes], stop_signal: int) -> None:
    """Send ``stop_signal`` to a process, wait, and kill its process group if it hangs."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
    # The process runs in its own session: kill whatever is left in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT)


@atexit.register
def _stop_all() -> None:
    """Stop every server still running when the interpreter exits."""
    while _RUNNING:
        service = _RUNNING.pop()
        with contextlib.suppress(Exception):
            service.stop()


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path:
    """Find the directory holding ``initdb`` and ``postgres`` (newest version first)."""

    def version_key(path: str) -> tuple[int, ...]:
        version = Path(path).parent.name
        return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            if out and (Path(out) / "initdb").is_file() and (Path(out) / "postgres").is_file():
                return Path(out)
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "postgres").is_file():
        return Path(initdb).parent
    raise ServiceError("initdb/postgres binaries not found (install PostgreSQL 15 or newer)")


def _postgres_run_as() -> _RunAs:
    """Return the user to run PostgreSQL as: postgres refuses to run as root."""
    if os.geteuid() != 0:
        return _RunAs()
    for name in (SUPERUSER, FALLBACK_SYSTEM_USER):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=name)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise ServiceError("running as root, and no 'postgres' user nor useradd to create one")
    try:
        subprocess.run(
            [useradd, "--system", "--no-create-home", FALLBACK_SYSTEM_USER],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServiceError(f"could not create system user {FALLBACK_SYSTEM_USER}: {exc}") from exc
    entry = pwd.getpwnam(FALLBACK_SYSTEM_USER)
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=FALLBACK_SYSTEM_USER)


def _sqlalchemy_to_libpq(url: str) -> str:
    """Turn a SQLAlchemy PostgreSQL URL into a libpq connection URI."""
    return re.sub(r"^postgres(?:ql)?(?:\+[A-Za-z0-9_]+)?://", "postgresql://", url)


def _with_database(url: str, database: str) -> str:
    """Return ``url`` with its database name replaced by ``database``."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


def _database_name(url: str) -> str:
    """Return the database name of a PostgreSQL URL."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.lstrip("/"))


def _wait_for_postgres(conninfo: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll until the server accepts connections, exits, or ``timeout`` passes."""
    import psycopg

    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"postgres exited with code {process.returncode} during startup")
        try:
            with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError as exc:
            last_error = exc
        time.sleep(0.1)
    raise ServiceError(f"postgres did not accept connections within {timeout:.0f}s: {last_error}")


def _start_postgres() -> tuple[_Service, str]:
    """Initialise and start a throwaway PostgreSQL server; return it and its URL."""
    if importlib.util.find_spec("psycopg") is None:
        raise ServiceError("psycopg is not installed")
    bindir = _postgres_bindir()
    run_as = _postgres_run_as()
    tempdir = _make_tempdir("plinth-pg-")
    datadir = tempdir / "data"
    initdb_log = tempdir / "initdb.log"
    server_log = tempdir / "postgres.log"
    try:
        if run_as.uid is not None:
            os.chown(tempdir, run_as.uid, run_as.gid if run_as.gid is not None else -1)
        with initdb_log.open("wb") as log:
            result = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--locale=C",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=tempdir,
                timeout=120,
                check=False,
                **run_as.popen_kwargs(),  # type: ignore[arg-type]
            )
        if result.returncode != 0:
            raise ServiceError(
                _with_log(f"initdb failed with code {result.returncode}", initdb_log)
            )
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(tempdir, ignore_errors=True)
        raise ServiceError(_with_log(f"initdb could not run: {exc}", initdb_log)) from exc
    except ServiceError:
        shutil.rmtree(tempdir, ignore_errors=True)
        raise

    last_error: ServiceError | None = None
    for _attempt in range(3):
        port = _free_port()
        log = server_log.open("ab")
        try:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(datadir),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={tempdir}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=tempdir,
                start_new_session=True,
                **run_as.popen_kwargs(),  # type: ignore[arg-type]
            )
        except OSError as exc:
            log.close()
            shutil.rmtree(tempdir, ignore_errors=True)
            raise ServiceError(f"postgres could not be launched: {exc}") from exc
        service = _Service(
            name="postgres",
            process=process,
            tempdir=tempdir,
            stop_signal=signal.SIGINT,  # "fast" shutdown
            log_files=[log],
        )
        _RUNNING.append(service)
        conninfo = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        try:
            _wait_for_postgres(conninfo, process, POSTGRES_START_TIMEOUT)
        except ServiceError as exc:
            last_error = ServiceError(_with_log(str(exc), server_log))
            exited_early = process.poll() is not None
            _terminate(process, signal.SIGINT)
            log.close()
            _RUNNING.remove(service)
            if exited_early:
                continue  # most likely the port was taken in between: try another one
            break
        try:
            import psycopg

            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{TEST_DATABASE}"')
        except Exception as exc:
            service.stop()
            raise ServiceError(f"could not create database {TEST_DATABASE}: {exc}") from exc
        url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{TEST_DATABASE}"
        return service, url
    shutil.rmtree(tempdir, ignore_errors=True)
    raise last_error or ServiceError("postgres could not be started")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL (``postgresql+psycopg://...``) of a session-wide PostgreSQL database."""
    external = os.environ.get("PLINTH_TEST_POSTGRES_URL", "").strip()
    if external:
        if importlib.util.find_spec("psycopg") is None:
            _unavailable("PostgreSQL", "psycopg is not installed")
        import psycopg

        try:
            with psycopg.connect(
                _sqlalchemy_to_libpq(external), connect_timeout=10, autocommit=True
            ) as conn:
                conn.execute("SELECT 1")
        except (OSError, psycopg.Error) as exc:
            _unavailable("PostgreSQL", f"PLINTH_TEST_POSTGRES_URL does not answer: {exc}")
        yield external
        return
    try:
        service, url = _start_postgres()
    except ServiceError as exc:
        _unavailable("PostgreSQL", str(exc))
    try:
        yield url
    finally:
        service.stop()


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, uniquely named database, dropped after the test."""
    import psycopg
    from psycopg import sql

    admin = _sqlalchemy_to_libpq(postgres_url)
    name = f"plinth_t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(postgres_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --------------------------------------------------------------------------- S3 (moto)


def _moto_command(port: int) -> list[str]:
    """Return the command line that starts moto's standalone server on ``port``."""
    script = Path(sys.executable).parent / "moto_server"
    args = ["-H", "127.0.0.1", "-p", str(port)]
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), *args]
    return [sys.executable, "-m", "moto.server", *args]


def _http_answers(url: str) -> bool:
    """Return True if an HTTP server answers at ``url`` (any status code counts)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _start_moto() -> tuple[_Service, str]:
    """Start a moto S3 server on a free loopback port; return it and its endpoint."""
    if importlib.util.find_spec("moto") is None:
        raise ServiceError("moto is not installed")
    tempdir = _make_tempdir("plinth-s3-")
    server_log = tempdir / "moto.log"
    last_error: ServiceError | None = None
    for _attempt in range(3):
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        log = server_log.open("ab")
        try:
            process = subprocess.Popen(
                _moto_command(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=tempdir,
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            shutil.rmtree(tempdir, ignore_errors=True)
            raise ServiceError(f"moto_server could not be launched: {exc}") from exc
        service = _Service(name="moto", process=process, tempdir=tempdir, log_files=[log])
        _RUNNING.append(service)
        deadline = time.monotonic() + S3_START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _http_answers(f"{endpoint}/moto-api/"):
                return service, endpoint
            time.sleep(0.1)
        exited_early = process.poll() is not None
        reason = (
            f"moto_server exited with code {process.returncode} during startup"
            if exited_early
            else f"moto_server did not answer within {S3_START_TIMEOUT:.0f}s"
        )
        last_error = ServiceError(_with_log(reason, server_log))
        _terminate(process, signal.SIGTERM)
        log.close()
        _RUNNING.remove(service)
        if not exited_early:
            break
    shutil.rmtree(tempdir, ignore_errors=True)
    raise last_error or ServiceError("moto_server could not be started")


@contextlib.contextmanager
def _aws_environment(endpoint: str, *, force_credentials: bool) -> Iterator[None]:
    """Point the AWS_* environment variables at ``endpoint``, restoring them afterwards."""
    saved = {key: os.environ.get(key) for key in _AWS_ENV_KEYS}
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    for key, value in values.items():
        if force_credentials:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """HTTP endpoint of a session-wide S3 server; AWS_* variables point at it meanwhile."""
    external = os.environ.get("PLINTH_TEST_S3_ENDPOINT", "").strip().rstrip("/")
    if external:
        if not _http_answers(external):
            _unavailable("S3", f"PLINTH_TEST_S3_ENDPOINT {external} does not answer")
        with _aws_environment(external, force_credentials=False):
            yield external
        return
    try:
        service, endpoint = _start_moto()
    except ServiceError as exc:
        _unavailable("S3", str(exc))
    try:
        with _aws_environment(endpoint, force_credentials=True):
            yield endpoint
    finally:
        service.stop()


@pytest.fixture
def s3_bucket_url(s3_endpoint: str) -> Iterator[str]:
    """``s3://BUCKET/prefix`` inside a fresh, uniquely named bucket, emptied afterwards."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"plinth-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/prefix"
    finally:
        with contextlib.suppress(Exception):
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            client.delete_bucket(Bucket=bucket)


# --------------------------------------------------------------------------- Redis

REDIS_START_TIMEOUT = 15.0


def _redis_server_binary() -> str:
    """Return the path of ``redis-server`` (on PATH, else /usr/bin)."""
    found = shutil.which("redis-server")
    if found:
        return found
    fallback = "/usr/bin/redis-server"
    if os.path.isfile(fallback) and os.access(fallback, os.X_OK):
        return fallback
    raise ServiceError("redis-server not found (install the 'redis-server' package)")


def _redis_ping(url: str) -> str | None:
    """Return None if the Redis server at ``url`` answers PING, else the reason it does not."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        return str(exc)
    finally:
        client.close()
    return None


def _start_redis() -> tuple[_Service, str]:
    """Start a throwaway Redis server on a free loopback port; return it and its URL."""
    if importlib.util.find_spec("redis") is None:
        raise ServiceError("the redis Python package is not installed")
    binary = _redis_server_binary()
    tempdir = _make_tempdir("plinth-redis-")
    server_log = tempdir / "redis.log"
    last_error: ServiceError | None = None
    for _attempt in range(3):
        port = _free_port()
        url = f"redis://127.0.0.1:{port}/0"
        log = server_log.open("ab")
        try:
            process = subprocess.Popen(
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tempdir),
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=tempdir,
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            shutil.rmtree(tempdir, ignore_errors=True)
            raise ServiceError(f"redis-server could not be launched: {exc}") from exc
        service = _Service(name="redis", process=process, tempdir=tempdir, log_files=[log])
        _RUNNING.append(service)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        problem: str | None = "not started"
        while time.monotonic() < deadline and process.poll() is None:
            problem = _redis_ping(url)
            if problem is None:
                return service, url
            time.sleep(0.05)
        exited_early = process.poll() is not None
        reason = (
            f"redis-server exited with code {process.returncode} during startup"
            if exited_early
            else f"redis-server did not answer PING within {REDIS_START_TIMEOUT:.0f}s: {problem}"
        )
        last_error = ServiceError(_with_log(reason, server_log))
        _terminate(process, signal.SIGTERM)
        log.close()
        _RUNNING.remove(service)
        if not exited_early:
            break  # a hang is not a port clash: do not try again
    shutil.rmtree(tempdir, ignore_errors=True)
    raise last_error or ServiceError("redis-server could not be started")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL (``redis://127.0.0.1:PORT/0``) of a session-wide Redis server.

    Set ``PLINTH_TEST_REDIS_URL`` to use an existing server instead; its database is flushed
    by ``redis_db_url`` before each test that uses it.
    """
    external = os.environ.get("PLINTH_TEST_REDIS_URL", "").strip()
    if external:
        if importlib.util.find_spec("redis") is None:
            _unavailable("Redis", "the redis Python package is not installed")
        problem = _redis_ping(external)
        if problem is not None:
            _unavailable("Redis", f"PLINTH_TEST_REDIS_URL does not answer: {problem}")
        yield external
        return
    try:
        service, url = _start_redis()
    except ServiceError as exc:
        _unavailable("Redis", str(exc))
    try:
        yield url
    finally:
        service.stop()


@pytest.fixture
def redis_db_url(redis_url: str) -> str:
    """The session's Redis URL, with its database emptied (FLUSHDB) before the test."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=30)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_url


# --------------------------------------------------------------------------- Ray

RAY_START_TIMEOUT = 90.0
RAY_CPUS = 2
RAY_OBJECT_STORE_BYTES = 200 * 1024 * 1024
#: Ray turns 127.0.0.1 into the machine's address unless it runs as a one-node cluster.
_RAY_LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}


def _ray_binary() -> str:
    """Return the ``ray`` command installed next to this interpreter (else on PATH)."""
    script = Path(sys.executable).parent / "ray"
    if script.is_file() and os.access(script, os.X_OK):
        return str(script)
    found = shutil.which("ray")
    if found:
        return found
    raise ServiceError("the 'ray' command is not installed (pip install 'ray[default]')")


def _session_members(sid: int) -> list[int]:
    """Pids of the processes in session ``sid`` (the head and everything it started)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            members.append(int(entry))
    return members


@dataclass
class _RayHead(_Service):
    """The Ray head: ``ray start --block`` and the processes of its session."""

    def stop(self) -> None:
        """Stop the head gracefully, then kill what is left of its session, one by one."""
        if self.stopped:
            return
        sid = self.process.pid
        super().stop()
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            left = _session_members(sid)
            if not left:
                return
            time.sleep(0.2)
        for pid in _session_members(sid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _ray_env(tempdir: Path) -> dict[str, str]:
    """Loopback settings plus a private token: token authentication is on by default for
    local clusters since Ray 2.59, and the shared ``~/.ray/auth_token`` would let another
    Ray on the machine (or a token it regenerates) lock the test drivers out."""
    import secrets

    token = tempdir / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return {**_RAY_LOOPBACK_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def _start_ray() -> tuple[_Service, str, dict[str, str]]:
    """Start a local Ray head on a free loopback port; return it, its address and the
    environment its drivers need."""
    if importlib.util.find_spec("ray") is None:
        raise ServiceError("ray is not installed")
    binary = _ray_binary()
    tempdir = _make_tempdir("plinth-ray-")
    env = _ray_env(tempdir)
    head_log = tempdir / "head.log"
    port = _free_port()
    log = head_log.open("ab")
    command = [
        binary, "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1",
        "--port", str(port),
        "--num-cpus", str(RAY_CPUS),
        "--object-store-memory", str(RAY_OBJECT_STORE_BYTES),
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--temp-dir", str(tempdir / "ray"),
    ]  # fmt: skip
    try:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tempdir,
            env={**os.environ, **env},
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        shutil.rmtree(tempdir, ignore_errors=True)
        raise ServiceError(f"ray start could not be launched: {exc}") from exc
    service = _RayHead(name="ray", process=process, tempdir=tempdir, log_files=[log])
    _RUNNING.append(service)
    deadline = time.monotonic() + RAY_START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if b"Ray runtime started" in head_log.read_bytes():
            return service, f"127.0.0.1:{port}", env
        time.sleep(0.2)
    reason = (
        f"ray start exited with code {process.returncode} during startup"
        if process.poll() is not None
        else f"the Ray head did not start within {RAY_START_TIMEOUT:.0f}s"
    )
    error = ServiceError(_with_log(reason, head_log))
    service.stop()
    raise error


@contextlib.contextmanager
def _ray_environment(env: dict[str, str]) -> Iterator[None]:
    """Point Ray drivers started by the tests at the head (loopback, its token), restoring
    the variables after."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a session-wide local Ray head (``PLINTH_TEST_RAY_ADDRESS`` wins)."""
    external = os.environ.get("PLINTH_TEST_RAY_ADDRESS", "").strip()
    if external:
        if importlib.util.find_spec("ray") is None:
            _unavailable("Ray", "ray is not installed")
        host, _, port = external.rpartition("://")[2].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except (OSError, ValueError) as exc:
            _unavailable("Ray", f"PLINTH_TEST_RAY_ADDRESS {external} does not answer: {exc}")
        yield external
        return
    try:
        service, address, env = _start_ray()
    except ServiceError as exc:
        _unavailable("Ray", str(exc))
    try:
        with _ray_environment(env):
            yield address
    finally:
        service.stop()


@pytest.hookimpl(specname="pytest_configure")
def pytest_configure_ray(config: pytest.Config) -> None:
    """Register the ``ray`` marker."""
    config.addinivalue_line("markers", "ray: needs a Ray cluster (a local head is started)")


@pytest.hookimpl(specname="pytest_configure")
def pytest_configure_redis(config: pytest.Config) -> None:
    """Register the ``redis`` marker."""
    config.addinivalue_line("markers", "redis: needs a Redis server")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``postgres`` and ``s3`` markers."""
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL server")
    config.addinivalue_line("markers", "s3: needs an S3-compatible server")
