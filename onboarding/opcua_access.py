"""asyncua clients for a plant's own OPC UA server, built from the plant file's ``endpoint`` section.

Shared by discovery, the connectivity and security checks and the pilot edge, so all of them connect
the same way: the security policy and mode the plant file names, a user and password, and a client
certificate the plant's server trusts (generated once next to the plant file when none is given).
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from asyncua import Client, ua
from asyncua.crypto import security_policies as sp

from live.opcua_server import ensure_certificate
from onboarding.plant_file import Endpoint

POLICIES: dict[str, type[sp.SecurityPolicy]] = {
    "Basic256Sha256": sp.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": sp.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": sp.SecurityPolicyAes256Sha256RsaPss,
}
DEPRECATED_POLICIES = ("Basic128Rsa15", "Basic256")
CLIENT_URI = "urn:synctwin:onboarding"


def parse_security(text: str | None) -> tuple[str, str]:
    """``(policy, mode)`` from ``Basic256Sha256,SignAndEncrypt`` (None or ``None``: no security)."""
    if not text or text.strip() in ("None", "none"):
        return "None", "None"
    policy, _, mode = (part.strip() for part in text.partition(","))
    if policy not in POLICIES:
        raise ValueError(f"--security: policy {policy!r} is not supported; use one of {', '.join(POLICIES)}")
    mode = mode or "SignAndEncrypt"
    if mode not in ("Sign", "SignAndEncrypt"):
        raise ValueError(f"--security: mode {mode!r} is unknown; use Sign or SignAndEncrypt")
    return policy, mode


def is_loopback(url: str) -> bool:
    """True when the endpoint's host resolves to a loopback address."""
    host = urlparse(url).hostname or ""
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def policy_name(uri: str) -> str:
    """``Basic256Sha256`` from ``http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256``."""
    return uri.rsplit("#", 1)[-1] if uri else "None"


def mode_name(mode: ua.MessageSecurityMode) -> str:
    """``None``, ``Sign`` or ``SignAndEncrypt`` (asyncua spells the first ``None_``)."""
    return mode.name.rstrip("_")


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lowercase hex (the form plant files pin)."""
    return hashlib.sha256(der).hexdigest()


def first_certificate(chain: bytes | None) -> bytes:
    """The leaf certificate of a DER chain an endpoint description carries (b"" if none).

    A chain is DER certificates back to back; the leaf's length is in its outer SEQUENCE header.
    """
    if not chain or len(chain) < 2:
        return b""
    length_bytes = chain[1] & 0x7F if chain[1] & 0x80 else 0
    length = int.from_bytes(chain[2:2 + length_bytes], "big") if length_bytes else chain[1]
    return bytes(chain[: 2 + length_bytes + length])


@dataclass(frozen=True)
class ClientIdentity:
    """The client certificate and key this tool presents (DER cert, PEM key)."""

    certificate: Path
    private_key: Path


async def client_identity(endpoint: Endpoint, pki_dir: Path) -> ClientIdentity:
    """The endpoint's configured client certificate, or one generated once under ``pki_dir``."""
    if endpoint.certificate and endpoint.private_key:
        return ClientIdentity(Path(endpoint.certificate), Path(endpoint.private_key))
    cert, key = await ensure_certificate(pki_dir, "onboarding-client", CLIENT_URI, server=False)
    return ClientIdentity(cert, key)


async def make_client(endpoint: Endpoint, pki_dir: Path, timeout: float = 10.0) -> Client:
    """An unconnected asyncua client configured as the plant file says."""
    client = Client(endpoint.url, timeout=timeout, watchdog_intervall=5.0)
    client.application_uri = CLIENT_URI
    if endpoint.policy != "None":
        identity = await client_identity(endpoint, pki_dir)
        mode = getattr(ua.MessageSecurityMode, endpoint.mode if endpoint.mode != "None" else "SignAndEncrypt")
        await client.set_security(POLICIES[endpoint.policy], str(identity.certificate), str(identity.private_key),
                                  mode=mode)
    if endpoint.user:
        client.set_user(endpoint.user)
        password = endpoint.resolved_password()
        if password is not None:
            client.set_password(password)
    return client


async def offered_endpoints(url: str, timeout: float = 10.0) -> list[ua.EndpointDescription]:
    """What the server offers (GetEndpoints over an unsecured channel, as every client starts)."""
    return list(await Client(url, timeout=timeout).connect_and_get_server_endpoints())
