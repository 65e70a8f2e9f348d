"""The plant's OPC UA endpoint: what security it offers, whether its certificate is the pinned one,
whether our login works, and whether a subscription delivers every bound signal in time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from asyncua import ua
from cryptography import x509

from onboarding.opcua_access import (
    DEPRECATED_POLICIES,
    POLICIES,
    fingerprint,
    first_certificate,
    is_loopback,
    make_client,
    mode_name,
    offered_endpoints,
    policy_name,
)
from onboarding.plant_file import PlantFile
from onboarding.profile import Profile
from onboarding.verdict import FAIL, PASS, WARN, Row

SECURITY, CONNECTIVITY = "security", "connectivity"
SECURE_FIX = "enable Basic256Sha256 (Sign and SignAndEncrypt) with user-name login on the plant's server"


async def check_endpoint_security(plant: PlantFile) -> list[Row]:
    """Policies and identity tokens offered, and the server certificate against the pin."""
    url = plant.endpoint.url
    try:
        endpoints = await offered_endpoints(url)
    except Exception as exc:  # noqa: BLE001 - unreachable: the connectivity rows say why
        return [Row(SECURITY, "endpoint security", FAIL, f"GetEndpoints on {url} failed: {type(exc).__name__} {exc}",
                    "make the endpoint reachable from the edge host, then run onboard again")]
    loopback = is_loopback(url)
    offered = sorted({(policy_name(e.SecurityPolicyUri), mode_name(e.SecurityMode)) for e in endpoints})
    tokens = {t.TokenType for e in endpoints for t in e.UserIdentityTokens}
    text = ", ".join(f"{p}/{m}" for p, m in offered)
    secure = [p for p, _ in offered if p in POLICIES]
    rows: list[Row] = []
    if not secure:
        rows.append(Row(SECURITY, "endpoint security policy", FAIL, f"{url} offers only {text}: no encryption, "
                        "no signatures" + (", anonymous access" if ua.UserTokenType.Anonymous in tokens else ""),
                        SECURE_FIX))
    else:
        rows.append(Row(SECURITY, "endpoint security policy", PASS, f"offers {text}"))
        if any(p == "None" for p, _ in offered):
            rows.append(Row(SECURITY, "SecurityPolicy None offered", WARN if loopback else FAIL,
                            f"{url} also offers SecurityPolicy None" + (" (loopback only)" if loopback else ""),
                            "remove the None endpoint from the plant's server"))
        if ua.UserTokenType.Anonymous in tokens:
            rows.append(Row(SECURITY, "anonymous login offered", WARN if loopback else FAIL,
                            f"{url} accepts anonymous sessions", "allow user-name (or certificate) logins only"))
    deprecated = sorted({p for p, _ in offered if p in DEPRECATED_POLICIES})
    if deprecated:
        rows.append(Row(SECURITY, "deprecated policies", WARN, f"also offers {', '.join(deprecated)} (deprecated)",
                        "disable Basic128Rsa15 and Basic256 on the plant's server"))
    if secure and plant.endpoint.policy == "None":
        rows.append(Row(SECURITY, "plant file uses no security", FAIL, "endpoint.policy is None although the "
                        f"server offers {', '.join(sorted(set(secure)))}", f"discover again with --security "
                        f"{secure[0]},SignAndEncrypt and a user"))
    if secure and plant.endpoint.policy != "None":
        rows.append(_certificate_row(plant, endpoints))
    return rows


def _certificate_row(plant: PlantFile, endpoints: list[ua.EndpointDescription]) -> Row:
    ep = plant.endpoint
    chosen = [e for e in endpoints
              if policy_name(e.SecurityPolicyUri) == ep.policy and mode_name(e.SecurityMode) == ep.mode]
    if not chosen:
        return Row(SECURITY, "server certificate", FAIL, f"the server no longer offers {ep.policy}/{ep.mode}",
                   "discover again with a --security the server offers")
    der = first_certificate(chosen[0].ServerCertificate)
    cert = x509.load_der_x509_certificate(der)
    sha = fingerprint(der)
    expires = cert.not_valid_after_utc
    pin = ep.server_certificate
    if expires < datetime.now(UTC):
        return Row(SECURITY, "server certificate", FAIL, f"expired {expires:%Y-%m-%d}", "renew the server certificate")
    if cert.public_key().key_size < 2048:
        return Row(SECURITY, "server certificate", FAIL, f"RSA key of {cert.public_key().key_size} bits",
                   "issue a certificate with a 2048-bit key or larger")
    if pin is None:
        return Row(SECURITY, "server certificate", FAIL, f"not pinned; the server presents SHA-256 {sha}",
                   "confirm this fingerprint with the plant's IT and set endpoint.server_certificate.sha256")
    if pin.sha256 != sha:
        return Row(SECURITY, "server certificate", FAIL, f"the server presents SHA-256 {sha}, not the {pin.sha256} "
                   "pinned at discovery", "confirm the new certificate with the plant's IT, then discover again")
    return Row(SECURITY, "server certificate", PASS, f"SHA-256 {sha[:16]}... matches the pin "
               f"({cert.subject.rfc4514_string()}, valid until {expires:%Y-%m-%d})")


def _login_fix(exc: Exception, pki_dir: Path) -> tuple[str, str]:
    name = type(exc).__name__
    if "CertificateUntrusted" in name or "CertificateUntrusted" in str(exc):
        return ("security", f"the plant's server does not trust this client's certificate; add "
                f"{pki_dir}/own/onboarding-client-cert.der (or endpoint.certificate) to its trusted list")
    if "UserAccessDenied" in name or "IdentityToken" in name:
        return ("security", "the server refused the user name or password: check endpoint.user and the variable "
                "named by endpoint.password_env")
    return ("connectivity", "make the endpoint reachable from the edge host (firewall, host name, port)")


def unbound_rows(plant: PlantFile, profile: Profile) -> list[Row]:
    """A row per missing counter or required signal, one per machine for missing telemetry."""
    rows = []
    for m in plant.machines:
        telemetry = [u for u in m.unbound if u.signal not in ("good", "scrap") and u.signal not in profile.required]
        for u in m.unbound:
            if u in telemetry:
                continue
            required = u.signal in profile.required
            what = "counter" if u.signal in ("good", "scrap") else "signal"
            effect = {"scrap": "its scrap is never posted to the ERP", "good": "nothing can be confirmed"}.get(
                u.signal, "the edge cannot follow the machine")
            rows.append(Row(CONNECTIVITY, f"{m.name}: no {u.signal} {what}", FAIL if required else WARN,
                            f"{m.name} has no {u.signal} {what} ({u.reason}); {effect}",
                            f"have the vendor expose a {u.signal} {what} on {m.name}, or bind it in a profile copy "
                            "(--profile) and discover again"))
        if telemetry:
            names = ", ".join(u.signal for u in telemetry)
            rows.append(Row(CONNECTIVITY, f"{m.name}: telemetry without {names}", WARN,
                            f"{m.name} has no {names} variable matching the profile; the edge's telemetry aggregates "
                            "lack them", "expose them on the plant's server or bind them in a profile copy"))
    return rows


async def check_connectivity(plant: PlantFile, profile: Profile, pki_dir: Path) -> list[Row]:
    """Connect and log in, read every bound node, and time a subscription's first notifications."""
    rows = unbound_rows(plant, profile)
    bound = {(m.name, s): b.node for m in plant.machines for s, b in m.signals.items() if s != "product"}
    interval = plant.endpoint.publishing_interval
    started = time.monotonic()
    try:
        client = await make_client(plant.endpoint, pki_dir)
        await asyncio.wait_for(client.connect(), 20)
    except Exception as exc:  # noqa: BLE001 - every failure to log in is a finding with a fix
        check, fix = _login_fix(exc, pki_dir)
        return [*rows, Row(check if check == SECURITY else CONNECTIVITY, "OPC UA login", FAIL,
                           f"{plant.endpoint.url}: {type(exc).__name__} {exc}", fix)]
    try:
        took = time.monotonic() - started
        login = f" as {plant.endpoint.user}" if plant.endpoint.user else " anonymously"
        rows.append(Row(CONNECTIVITY, "endpoint answers", PASS, f"session{login} over {plant.endpoint.policy}/"
                        f"{plant.endpoint.mode} in {took:.2f} s"))
        nodes = {key: client.get_node(node) for key, node in bound.items()}
        values = await client.read_attributes(list(nodes.values()))
        bad = [f"{k[0]}.{k[1]} ({dv.StatusCode.name})" for k, dv in zip(nodes, values, strict=True)
               if not dv.StatusCode.is_good()]
        rows.append(Row(CONNECTIVITY, "bound nodes readable", FAIL if bad else PASS,
                        f"{len(nodes) - len(bad)} of {len(nodes)} bound nodes read Good" +
                        (f"; not readable: {', '.join(bad)}" if bad else ""),
                        "give the edge's user read access to these nodes, or discover again" if bad else ""))
        rows.append(await _subscription_row(client, nodes, interval))
    finally:
        await client.disconnect()
    return rows


class _FirstSeen:
    def __init__(self):
        self.at: dict[str, float] = {}

    def datachange_notification(self, node, val, data) -> None:
        self.at.setdefault(node.nodeid.to_string(), time.monotonic())


async def _subscription_row(client, nodes: dict, interval: float) -> Row:
    handler = _FirstSeen()
    sub = await client.create_subscription(interval * 1000, handler)
    t0 = time.monotonic()
    await sub.subscribe_data_change(list(nodes.values()))
    wanted = {n.nodeid.to_string(): key for key, n in nodes.items()}
    deadline = t0 + max(5.0, 10 * interval)
    while len(handler.at) < len(wanted) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await sub.delete()
    # One publishing interval, plus one more for the phase of the server's publish cycle.
    allowed = 2 * interval
    latencies = {nid: at - t0 for nid, at in handler.at.items()}
    missing = [f"{wanted[n][0]}.{wanted[n][1]}" for n in wanted if n not in latencies]
    late = [f"{wanted[n][0]}.{wanted[n][1]} ({t:.2f} s)" for n, t in latencies.items() if t > allowed]
    worst = max(latencies.values(), default=float("nan"))
    evidence = (f"{len(latencies)} of {len(wanted)} bound signals delivered; slowest first notification {worst:.2f} s "
                f"at a {interval:g} s publishing interval")
    if missing:
        return Row(CONNECTIVITY, "subscription delivers every signal", FAIL, f"{evidence}; never delivered: "
                   f"{', '.join(missing)}", "check the server's monitored-item limits and these nodes' access rights")
    if late:
        return Row(CONNECTIVITY, "subscription delivers every signal", WARN, f"{evidence}; late: {', '.join(late)}",
                   "raise endpoint.publishing_interval or the server's sampling rate")
    return Row(CONNECTIVITY, "subscription delivers every signal", PASS, evidence)
