"""The secured plant server against the attempts of an outside client: sessions on a None channel, clear-text
passwords, certificates trusted by ``synctwin opcua-trust`` (DER and PEM)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import uacrypto
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256, encrypt_asymmetric
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from typer.testing import CliRunner

from live.opcua_server import ensure_certificate, load_opcua_credentials, namespace_uri
from synctwin.cli import app
from tests.live.opcua_support import secure_client


async def none_channel_session(url: str, user: str, password: str, encrypt: bool) -> float:
    """SecurityPolicy None channel, CreateSession, ActivateSession with a user-name token carrying ``password``
    (clear text, or RSA-OAEP-encrypted with the server's certificate); then read a variable."""
    client = Client(url, timeout=5)
    await client.connect_socket()
    try:
        await client.send_hello()
        await client.open_secure_channel()  # the client's default: SecurityPolicy None
        params = ua.CreateSessionParameters(
            ClientNonce=b"n" * 32, EndpointUrl=url, SessionName="outsider", RequestedSessionTimeout=60_000,
            ClientDescription=ua.ApplicationDescription(ApplicationUri="urn:outsider",
                                                        ApplicationType=ua.ApplicationType.Client),
        )
        created = await client.uaclient.create_session(params)
        token = ua.UserNameIdentityToken(UserName=user, PolicyId="username")
        if encrypt:
            key = uacrypto.x509_from_der(created.ServerEndpoints[0].ServerCertificate).public_key()
            blob = ua.ua_binary.Primitives.Bytes.pack(password.encode() + created.ServerNonce)
            token.Password, token.EncryptionAlgorithm = encrypt_asymmetric(key, blob, SecurityPolicyBasic256Sha256.URI)
        else:
            token.Password = password.encode()  # what the specification sends when the token policy is None
        await client.uaclient.activate_session(ua.ActivateSessionParameters(UserIdentityToken=token))
        idx = await client.get_namespace_index(namespace_uri("P01"))
        return await client.get_node(ua.NodeId("P01.Line01.M01.Speed", idx)).read_value()
    finally:
        client.disconnect_socket()


def test_a_session_on_a_none_channel_is_refused_with_the_real_password(secure_host):
    host, run_dir = secure_host
    user, password = load_opcua_credentials(run_dir)

    async def main():
        with pytest.raises(ua.uaerrors.BadIdentityTokenRejected):
            await none_channel_session(host.url, user, password, encrypt=False)
        with pytest.raises(ua.uaerrors.BadSecurityModeInsufficient):
            await none_channel_session(host.url, user, password, encrypt=True)

    asyncio.run(main())


@pytest.mark.parametrize("mode", [ua.MessageSecurityMode.Sign, ua.MessageSecurityMode.SignAndEncrypt])
def test_a_user_is_served_over_basic256sha256(secure_host, mode):
    host, run_dir = secure_host
    user, password = load_opcua_credentials(run_dir)

    async def main():
        endpoints = await Client(host.url).connect_and_get_server_endpoints()
        for ep in endpoints:  # every endpoint asks for an encrypted password
            assert [t.SecurityPolicyUri for t in ep.UserIdentityTokens] == [SecurityPolicyBasic256Sha256.URI]
        client = await secure_client(host.url, run_dir, user, password)
        cert, key = await ensure_certificate(run_dir / "state" / "pki", "test-client", client.application_uri,
                                             server=False)
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), mode=mode)
        async with client:
            idx = await client.get_namespace_index(namespace_uri("P01"))
            machine = client.get_node(ua.NodeId("P01.Line01.M02", idx))
            await machine.call_method(ua.NodeId("P01.Line01.M02.Stop", idx))
            state = await client.get_node(ua.NodeId("P01.Line01.M02.State", idx)).read_value()
            assert state != "running"
            await machine.call_method(ua.NodeId("P01.Line01.M02.Start", idx))

    asyncio.run(main())


def test_a_token_encrypted_more_weakly_than_the_channel_is_refused(secure_host):
    host, run_dir = secure_host
    user, password = load_opcua_credentials(run_dir)

    async def main():
        client = await secure_client(host.url, run_dir, user, password)

        def rsa15(params, username, password):  # Basic128Rsa15's password encryption
            params.UserIdentityToken = ua.UserNameIdentityToken(UserName=username, PolicyId="username")
            pubkey = uacrypto.x509_from_der(client.security_policy.peer_certificate).public_key()
            blob = ua.ua_binary.Primitives.Bytes.pack(password.encode() + client._server_nonce)
            params.UserIdentityToken.Password = uacrypto.encrypt_rsa15(pubkey, blob)
            params.UserIdentityToken.EncryptionAlgorithm = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"

        client._add_user_auth = rsa15
        with pytest.raises(ua.uaerrors.BadIdentityTokenRejected):
            async with client:
                pass

    asyncio.run(main())


def test_opcua_trust_stores_a_pem_certificate_as_der_and_the_client_gets_in(secure_host, tmp_path):
    host, run_dir = secure_host
    user, password = load_opcua_credentials(run_dir)

    async def make_cert() -> tuple[Path, Path]:
        outsider = Client(host.url)
        outsider.application_uri = "urn:outsider:scada"
        return await outsider.setup_self_signed_certificate(tmp_path / "key.pem", tmp_path / "scada.der")

    cert, key = asyncio.run(make_cert())
    pem = tmp_path / "scada.pem"
    pem.write_bytes(x509.load_der_x509_certificate(cert.read_bytes()).public_bytes(Encoding.PEM))

    async def login() -> float:
        client = Client(host.url, timeout=5)
        client.application_uri = "urn:outsider:scada"
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key))
        client.set_user(user)
        client.set_password(password)
        async with client:
            idx = await client.get_namespace_index(namespace_uri("P01"))
            return await client.get_node(ua.NodeId("P01.Line01.M01.Speed", idx)).read_value()

    with pytest.raises(ua.uaerrors.BadCertificateUntrusted):
        asyncio.run(login())
    result = CliRunner().invoke(app, ["opcua-trust", str(pem), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    stored = run_dir / "state" / "pki" / "trusted" / "scada.der"
    assert stored.read_bytes() == cert.read_bytes() and str(stored) in result.output.replace("\n", "")
    assert asyncio.run(login()) >= 0


def test_opcua_trust_refuses_a_file_that_is_no_certificate(tmp_path):
    junk = tmp_path / "notes.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    result = CliRunner().invoke(app, ["opcua-trust", str(junk), "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not an X.509 certificate" in result.output
    missing = CliRunner().invoke(app, ["opcua-trust", str(tmp_path / "none.der"), "--run-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "is not a file" in missing.output


def test_opcua_help_tells_third_party_clients_what_they_need():
    text = " ".join(CliRunner().invoke(app, ["opcua", "--help"], terminal_width=200).output.split())
    for fact in ("credentials.json", "pki/trusted/", "opcua-trust", "Basic256Sha256", "Sign and SignAndEncrypt",
                 "DER or PEM", "None endpoint"):
        assert fact in text, fact
