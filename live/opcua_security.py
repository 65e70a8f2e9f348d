"""Who may open a session on a secured plant server, and how third-party clients get in.

asyncua lets a client activate a session over a SecurityPolicy None channel (meant for discovery) with a
clear-text ``UserNameIdentityToken``; the OPC UA specification (Part 4, UserIdentityToken) sends the
password unencrypted whenever the token's policy resolves to None. The secured server therefore refuses:

* any session activation on a None channel (no client certificate): ``BadSecurityModeInsufficient``;
* any user token not encrypted with Basic256Sha256's algorithm (or a stronger one), whatever the channel
  mode: ``BadIdentityTokenRejected``. Every endpoint advertises its user-name token policy as
  Basic256Sha256, so standard clients encrypt the password even inside a SignAndEncrypt channel.

Client certificates are trusted by placing them in ``RUN_DIR/state/pki/trusted/`` (DER or PEM);
:func:`trust_client_certificate` does it and ``synctwin opcua-trust`` calls it. What third-party clients
need to know is in ``synctwin opcua --help`` and the README.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.server.internal_server import InternalServer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

# Password encryption of Basic256Sha256 (RSA-OAEP with SHA-1) and of the stronger Aes256_Sha256_RsaPss.
STRONG_ENOUGH = frozenset({
    SecurityPolicyBasic256Sha256.AsymmetricEncryptionURI,
    "http://opcfoundation.org/UA/security/rsa-oaep-sha2-256",
})


def certificate_der(data: bytes, source: str = "certificate") -> bytes:
    """The DER bytes of an X.509 certificate given as DER or PEM; ValueError naming ``source`` if neither."""
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{source}: not an X.509 certificate in DER or PEM ({exc})") from None
    return cert.public_bytes(Encoding.DER)


def trust_client_certificate(cert: Path, pki_dir: Path) -> Path:
    """Store ``cert`` (DER or PEM) as DER in ``pki_dir/trusted/``, where the plant servers look; return the path."""
    cert = Path(cert)
    if not cert.is_file():
        raise ValueError(f"CERT: {cert} is not a file; give the client's certificate (DER or PEM)")
    der = certificate_der(cert.read_bytes(), str(cert))
    trusted = Path(pki_dir) / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    target = trusted / f"{cert.stem}.der"
    target.write_bytes(der)
    return target


def trusted_ders(pki_dir: Path) -> set[bytes]:
    """DER bytes of every certificate in ``pki_dir/trusted`` (``*.der``, ``*.pem``, ``*.crt``); others are skipped."""
    trusted = Path(pki_dir) / "trusted"
    found = set()
    for path in sorted(trusted.iterdir()) if trusted.is_dir() else ():
        if path.suffix.lower() in (".der", ".pem", ".crt", ".cer"):
            try:
                found.add(certificate_der(path.read_bytes(), str(path)))
            except ValueError:
                continue  # a broken file trusts nobody
    return found


def trusted_validator(pki_dir: Path) -> Callable:
    """A certificate validator that accepts only client certificates found in ``pki_dir/trusted``."""

    async def validate(certificate: x509.Certificate, app_description: Any) -> None:
        if certificate.public_bytes(Encoding.DER) not in trusted_ders(pki_dir):
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    return validate


class PasswordUsers:
    """Accepts exactly one user name and password (constant-time compare), on a secured channel only."""

    def __init__(self, user: str, password: str):
        self._user, self._password = user, password

    def get_user(self, iserver, username=None, password=None, certificate=None) -> User | None:
        """The user for a decrypted token; ``certificate`` is the channel's client certificate (empty on a
        SecurityPolicy None channel, where no session is allowed)."""
        if not certificate:
            raise ServiceError(ua.StatusCodes.BadSecurityModeInsufficient)
        if username is None or password is None:
            return None
        if hmac.compare_digest(username, self._user) and hmac.compare_digest(str(password), self._password):
            return User(role=UserRole.User, name=username)
        return None


class GuardedInternalServer(InternalServer):
    """asyncua's internal server with user-name tokens that must be encrypted with Basic256Sha256 or better."""

    def add_endpoint(self, endpoint: ua.EndpointDescription) -> None:
        """Advertise Basic256Sha256 as every user-name token's policy (asyncua says None on SignAndEncrypt)."""
        for token in endpoint.UserIdentityTokens:
            if token.TokenType == ua.UserTokenType.UserName:
                token.SecurityPolicyUri = SecurityPolicyBasic256Sha256.URI
        super().add_endpoint(endpoint)

    def decrypt_user_token(self, isession: Any, token: ua.UserNameIdentityToken) -> tuple[str, str]:
        """Refuse a token whose password is clear text or encrypted more weakly than Basic256Sha256."""
        if token.EncryptionAlgorithm not in STRONG_ENOUGH:
            self.logger.warning("refused a user token encrypted with %r", token.EncryptionAlgorithm or "nothing")
            raise ServiceError(ua.StatusCodes.BadIdentityTokenRejected)
        return super().decrypt_user_token(isession, token)
