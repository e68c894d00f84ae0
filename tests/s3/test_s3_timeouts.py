"""S3 filesystems get connect and request timeouts (the SDK's defaults held one upload to a
server that never answered for 288 s), keeping every other option as the URI resolved it."""

from __future__ import annotations

from s3_server import S3Server
from shipyard.stores.log_location import (
    CONNECT_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    _filesystem,
    write_object,
)
from shipyard.stores.table_sources import filesystem


def _options(fs: object) -> dict[str, object]:
    options: dict[str, object] = fs.__reduce__()[1][0]  # type: ignore[attr-defined]
    return options


def test_log_and_batch_filesystems_have_timeouts_and_still_work(s3_env: S3Server) -> None:
    bucket = s3_env.bucket()
    for fs, _ in (_filesystem(f"s3://{bucket}/logs"), filesystem(f"s3://{bucket}/in.parquet")):
        options = _options(fs)
        assert options["request_timeout"] == REQUEST_TIMEOUT_S
        assert options["connect_timeout"] == CONNECT_TIMEOUT_S
        assert str(options["endpoint_override"]).endswith(s3_env.endpoint.split("://")[1])
    write_object(f"s3://{bucket}/logs/a.bin", b"payload")
    body = s3_env.client().get_object(Bucket=bucket, Key="logs/a.bin")["Body"].read()
    assert body == b"payload"
