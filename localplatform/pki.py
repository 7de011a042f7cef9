"""Certificates for the local control plane: one CA, the API server's serving cert,
client certs per component, and the service-account signing key."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _ca(
    directory: Path, stem: str = "ca", cn: str = "maestro-local-ca"
) -> tuple[Pair, ec.EllipticCurvePrivateKey, x509.Certificate]:
    pair = Pair(directory / f"{stem}.crt", directory / f"{stem}.key")
    if pair.cert.exists() and pair.key.exists():
        key = serialization.load_pem_private_key(pair.key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return pair, key, x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(pair.key, key)
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair, key, cert


def _leaf(
    directory: Path,
    stem: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    cn: str,
    org: str | None = None,
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
) -> Pair:
    pair = Pair(directory / f"{stem}.crt", directory / f"{stem}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = [ExtendedKeyUsageOID.SERVER_AUTH] if (server_names or server_ips) else []
    usage.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    )
    if server_names or server_ips:
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pair.key, key)
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair


@dataclass(frozen=True)
class Pki:
    ca: Pair
    apiserver: Pair
    admin: Pair
    controller_manager: Pair
    scheduler: Pair
    vault_injector: Pair  # the serving cert of the Vault Agent injector's webhook
    # The aggregation layer: the API server proxies to extension API servers
    # (metrics-server) as front-proxy-client, which they trust through front_proxy_ca.
    front_proxy_ca: Pair
    front_proxy_client: Pair
    service_account_key: Path
    service_account_pub: Path


def ensure_pki(directory: Path, service_ip: str) -> Pki:
    """Create (once) every certificate and key the control plane needs; reused after."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key, ca_cert = _ca(directory)
    fp_ca, fp_key, fp_cert = _ca(directory, "front-proxy-ca", "maestro-local-front-proxy-ca")
    sa_key = directory / "sa.key"
    sa_pub = directory / "sa.pub"
    if not sa_key.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(sa_key, key)
        sa_pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return Pki(
        ca=ca,
        apiserver=_leaf(
            directory,
            "apiserver",
            ca_key,
            ca_cert,
            cn="kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=("127.0.0.1", service_ip),
        ),
        admin=_leaf(directory, "admin", ca_key, ca_cert, cn="maestro-admin", org="system:masters"),
        controller_manager=_leaf(
            directory, "controller-manager", ca_key, ca_cert, cn="system:kube-controller-manager"
        ),
        scheduler=_leaf(directory, "scheduler", ca_key, ca_cert, cn="system:kube-scheduler"),
        vault_injector=_leaf(
            directory,
            "vault-injector",
            ca_key,
            ca_cert,
            cn="vault-agent-injector",
            server_ips=("127.0.0.1",),
        ),
        front_proxy_ca=fp_ca,
        front_proxy_client=_leaf(
            directory, "front-proxy-client", fp_key, fp_cert, cn=FRONT_PROXY_CLIENT
        ),
        service_account_key=sa_key,
        service_account_pub=sa_pub,
    )
