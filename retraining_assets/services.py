"""Which service a resource talks to, whether it answers, and one-line errors naming it.

Used by ``retraining doctor`` and by the resources, so that an unreachable Postgres, S3 endpoint or
Dask scheduler fails with one line that names the endpoint rather than a wall of driver traceback.
Client libraries (psycopg2, boto3, distributed) are imported inside the functions that need them.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

#: Seconds a reachability probe waits before calling a service unreachable.
PROBE_TIMEOUT = 3.0


class ServiceUnreachable(RuntimeError):
    """A service did not answer; the message is one line naming its endpoint."""


def mask_url(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``, safe to print or log.

    Args:
        url: Any URL, e.g. ``postgresql://user:secret@host:5432/db``.

    Returns:
        The same URL as ``postgresql://user:***@host:5432/db``.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, at most ``limit`` characters."""
    for line in str(exc).splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= limit else text[: limit - 3] + "..."
    return type(exc).__name__


def is_postgres(uri: str) -> bool:
    """Whether ``uri`` is a PostgreSQL URL (``postgresql://`` or ``postgresql+driver://``)."""
    return uri.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def postgres_endpoint(uri: str) -> str:
    """``host:port`` of a PostgreSQL URL."""
    parts = urlsplit(uri)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def check_postgres(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Open and close one connection to a PostgreSQL database.

    Args:
        uri: ``postgresql[+driver]://user:password@host:port/db``.
        timeout: Connect timeout in seconds.

    Raises:
        ServiceUnreachable: one line naming ``host:port`` and the driver's reason.
    """
    import psycopg2

    _, rest = uri.split("://", 1)
    libpq_uri = "postgresql://" + rest  # libpq does not know SQLAlchemy's "+driver" suffix
    try:
        conn = psycopg2.connect(libpq_uri, connect_timeout=max(1, round(timeout)))
    except psycopg2.Error as exc:
        raise ServiceUnreachable(
            f"postgres at {postgres_endpoint(uri)} unreachable ({mask_url(uri)}): {first_line(exc)}"
        ) from exc
    conn.close()


def s3_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint to use: ``endpoint_url``, else ``$AWS_ENDPOINT_URL``, else AWS (``None``)."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def split_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, key prefix)`` of an ``s3://bucket/prefix`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    return parts.netloc, parts.path.lstrip("/")


def check_s3(url: str, endpoint_url: str | None = None, timeout: float = PROBE_TIMEOUT) -> None:
    """Check that the bucket of ``url`` exists and answers (``HeadBucket``).

    Args:
        url: ``s3://bucket/prefix``.
        endpoint_url: S3 endpoint; default ``$AWS_ENDPOINT_URL``, else AWS.
        timeout: Connect and read timeout in seconds (no retries).

    Raises:
        ServiceUnreachable: one line naming the endpoint and the bucket.
    """
    import boto3
    import botocore.config
    import botocore.exceptions

    bucket, _ = split_s3_url(url)
    endpoint = s3_endpoint(endpoint_url)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=botocore.config.Config(
            connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}
        ),
    )
    where = endpoint or "AWS S3"
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        reason = "no such bucket" if code in ("404", "NoSuchBucket") else f"error {code}"
        raise ServiceUnreachable(f"s3 bucket {bucket!r} at {where}: {reason}") from exc
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise ServiceUnreachable(f"s3 endpoint {where} unreachable: {first_line(exc)}") from exc


def check_dask(address: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Connect to a Dask scheduler and disconnect.

    Args:
        address: Scheduler address, e.g. ``tcp://127.0.0.1:8786``.
        timeout: Seconds to wait for the connection.

    Raises:
        ServiceUnreachable: one line naming the address.
    """
    from distributed import Client

    try:
        client = Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ServiceUnreachable(
            f"dask scheduler at {address} unreachable: {first_line(exc)}"
        ) from exc
    client.close()


def unreachable_message(exc: BaseException, what: str, s3_what: str | None = None) -> str | None:
    """A one-line message when ``exc`` means a service did not answer, else ``None``.

    Recognises botocore connection errors, psycopg2/SQLAlchemy operational errors and socket
    errors anywhere in the exception's cause chain.

    Args:
        exc: The exception raised by a client library.
        what: What was being reached, e.g. ``"MLflow store postgresql://u:***@h:5432/mlflow"``.
        s3_what: What to name instead when the error came from the S3 client (botocore).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ServiceUnreachable):
            return str(current)
        name = type(current).__name__
        module = type(current).__module__
        if module.startswith("botocore") and ("Connect" in name or "Endpoint" in name):
            return f"{s3_what or what} unreachable: {first_line(current)}"
        if name in ("EndpointConnectionError", "OperationalError", "ConnectionRefusedError") or (
            module.startswith(("psycopg2", "sqlalchemy")) and "Operational" in name
        ):
            return f"{what} unreachable: {first_line(current)}"
        current = current.__cause__ or current.__context__
    return None
