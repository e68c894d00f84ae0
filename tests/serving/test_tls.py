"""HTTPS (issue 17): ``shipyard serve --ssl-certfile/--ssl-keyfile`` with a self-signed
certificate, a registry key required on the way: a client that trusts the certificate is
answered; plain HTTP and a client that does not trust it get nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import ssl
import time
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from serving.helpers import ServerProcess
from shipyard.registry import Registry
from shipyard.settings import Settings


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_with_a_self_signed_certificate_and_a_registry_key(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    package = shipyard.package(LogisticRegression(max_iter=300).fit(x, y), x, name="iris") \
        .save(tmp_path / "iris")
    home = tmp_path / "home"
    with Registry(settings=Settings.from_env({"SHIPYARD_HOME": str(home)})) as reg:
        _, secret = reg.api_keys.create("tls-client", "predict")
    cert, key = self_signed(tmp_path)
    server = ServerProcess([str(package), "--ssl-certfile", str(cert), "--ssl-keyfile",
                            str(key)], home=home, out=tmp_path / "server.log")
    base = f"https://127.0.0.1:{server.port}"
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.proc.poll() is None, server.output()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/v2/health/ready", verify=trusting,
                             timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.2)
        body = {"instances": x[:2].tolist()}
        url = f"{base}/v1/endpoints/iris/predict"
        assert httpx.post(url, json=body, verify=trusting).status_code == 401
        answer = httpx.post(url, json=body, verify=trusting,
                            headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == LogisticRegression(max_iter=300).fit(
            x, y).predict(x[:2]).tolist()
        with pytest.raises(httpx.ConnectError):  # the default trust store does not know it
            httpx.post(url, json=body, headers={"X-API-Key": secret})
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port
            httpx.post(f"http://127.0.0.1:{server.port}/v1/endpoints/iris/predict",
                       json=body, headers={"X-API-Key": secret}, timeout=5)
        assert "https://127.0.0.1" in server.output() and secret not in server.output()
    finally:
        server.stop()
    with Registry(settings=Settings.from_env({"SHIPYARD_HOME": str(home)})) as reg:
        first = reg.audit(action="key.first_use")
        assert [r.after["name"] for r in first] == ["tls-client"]
