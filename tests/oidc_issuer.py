"""A real local OIDC issuer for the tests: an aiohttp app over HTTPS (a certificate made for the
run) serving discovery and a JWKS of generated RSA and EC keys, able to rotate them, and minting
id-tokens shaped like GitHub Actions' and Kubernetes' projected service-account tokens."""

import datetime
import ipaddress
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "issuer.pem", directory / "issuer.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class LocalIssuer:
    def __init__(self, directory: Path) -> None:
        self._cert, self._key = _certificate(directory)
        self.certificate = self._cert
        """The issuer's certificate (PEM): what a client trusts, e.g. a ``serve`` process through
        ``SSL_CERT_FILE``."""
        self.client_ssl = ssl.create_default_context(cafile=str(self._cert))
        self.keys: dict[str, PrivateKey] = {}
        self.jwks_fetches = 0
        self.rotate()
        self._server: TestServer | None = None
        self.url = ""

    def rotate(self) -> None:
        """New RSA and EC keys under new ids; the old ones are no longer published."""
        suffix = uuid.uuid4().hex[:8]
        self.keys = {
            f"rsa-{suffix}": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            f"ec-{suffix}": ec.generate_private_key(ec.SECP256R1()),
        }

    def kid(self, kind: str) -> str:
        return next(kid for kid in self.keys if kid.startswith(kind))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._cert, self._key)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server(ssl=context)
        self.url = f"https://127.0.0.1:{self._server.port}"

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _discovery(self, _request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

    async def _jwks(self, _request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        keys = []
        for kid, key in self.keys.items():
            public = key.public_key()
            if isinstance(public, rsa.RSAPublicKey):
                jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
            else:
                jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return web.json_response({"keys": keys})

    def public_pem(self, kid: str) -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def mint(
        self, claims: dict[str, Any], *, kind: str = "rsa", kid: str | None = None, **header: Any
    ) -> str:
        """An id-token of this issuer: ``iss``, ``iat``, ``nbf``, ``exp`` (5 minutes) and a fresh
        ``jti`` unless ``claims`` set them (None leaves one out)."""
        now = int(time.time())
        body = {"iss": self.url, "iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex, **claims}
        body = {name: value for name, value in body.items() if value is not None}
        key_id = kid or self.kid(kind)
        algorithm = "RS256" if key_id.startswith("rsa") else "ES256"
        return jwt.encode(body, self.keys[key_id], algorithm=algorithm, headers={"kid": key_id, **header})


def github_claims(
    audience: str, repository: str = "acme/deploy", owner_id: str = "4242", **more: Any
) -> dict[str, Any]:
    return {
        "aud": audience,
        "sub": f"repo:{repository}:ref:refs/heads/main",
        "repository": repository,
        "repository_owner": repository.split("/")[0],
        "repository_owner_id": owner_id,
        "workflow_ref": f"{repository}/.github/workflows/deploy.yml@refs/heads/main",
        "ref": "refs/heads/main",
        "run_id": "987654321",
        "environment": "production",
        **more,
    }


def kubernetes_claims(audience: str, namespace: str = "ci", account: str = "deployer") -> dict[str, Any]:
    return {
        "aud": [audience],
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": "deployer-7d9f", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": account, "uid": str(uuid.uuid4())},
        },
    }
