"""``roost certgen``: a small certificate authority for a house without a PKI.

Rules of this module:

- ``certgen ca`` makes a CA key and self-signed certificate; ``certgen server HOST...`` a server
  certificate for those host names and IP addresses; ``certgen client USER`` a client
  certificate whose subject common name is the user (mutual TLS). Both are signed by the CA in
  the same directory.
- Keys are ECDSA P-256, written with mode 0600 and never overwritten without ``--force``.
- The functions below (no printing) are what the commands and the tests use.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from roost.cli.output import EXIT_OK, EXIT_USAGE, error

__all__ = ("certgen", "make_ca", "make_cert", "write_pair")

_Key = ec.EllipticCurvePrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(name: str = "roost CA", days: int = 3650) -> tuple[x509.Certificate, _Key]:
    """A new CA: its self-signed certificate and key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = _now() - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_cert(
    ca: tuple[x509.Certificate, _Key],
    name: str,
    *,
    hosts: Sequence[str] = (),
    client: bool = False,
    days: int = 825,
    not_before: datetime.datetime | None = None,
) -> tuple[x509.Certificate, _Key]:
    """A certificate signed by ``ca``: a server certificate for ``hosts`` (names and IP
    addresses), or with ``client`` a client certificate whose common name is ``name``.
    ``not_before`` moves the validity window (tests make expired certificates with it)."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before if not_before is not None else _now() - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def write_pair(
    directory: Path, stem: str, pair: tuple[x509.Certificate, _Key], *, force: bool = False
) -> tuple[Path, Path]:
    """Write ``stem.pem`` (certificate) and ``stem.key`` (key, mode 0600) into ``directory``.

    Raises:
        FileExistsError: a file exists and ``force`` is not set.
    """
    cert, key = pair
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    for path in (cert_path, key_path):
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists (use --force to replace it)")
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _load_ca(directory: Path) -> tuple[x509.Certificate, _Key]:
    cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / 'ca.key'} is not a key made by roost certgen")
    return cert, key


_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory of ca.pem/ca.key and of the files written.",
)
_DAYS = click.option("--days", type=click.IntRange(min=1), default=None, help="Validity in days.")
_FORCE = click.option("--force", is_flag=True, help="Replace existing files.")


@click.group()
def certgen() -> None:
    """Make a small CA and the certificates a TLS broker and its clients need."""


@certgen.command()
@_DIR
@_DAYS
@_FORCE
@click.option("--name", default="roost CA", show_default=True, help="The CA's common name.")
def ca(directory: Path, days: int | None, force: bool, name: str) -> int:
    """Write ca.pem and ca.key (keep ca.key secret; give ca.pem to every client)."""
    try:
        paths = write_pair(directory, "ca", make_ca(name, days or 3650), force=force)
    except OSError as exc:
        error(str(exc))
        return EXIT_USAGE
    click.echo(f"wrote {paths[0]} and {paths[1]}")
    return EXIT_OK


@certgen.command()
@click.argument("hosts", nargs=-1, required=True)
@_DIR
@_DAYS
@_FORCE
@click.option("--out", default="server", show_default=True, help="File name stem.")
def server(hosts: tuple[str, ...], directory: Path, days: int | None, force: bool, out: str) -> int:
    """Write server.pem and server.key for HOSTS (names and IP addresses clients use)."""
    try:
        pair = make_cert(_load_ca(directory), hosts[0], hosts=hosts, days=days or 825)
        paths = write_pair(directory, out, pair, force=force)
    except (OSError, ValueError) as exc:
        error(str(exc))
        return EXIT_USAGE
    click.echo(f"wrote {paths[0]} and {paths[1]} for {', '.join(hosts)}")
    return EXIT_OK


@certgen.command()
@click.argument("user")
@_DIR
@_DAYS
@_FORCE
def client(user: str, directory: Path, days: int | None, force: bool) -> int:
    """Write USER.pem and USER.key: a client certificate that logs in as USER."""
    try:
        pair = make_cert(_load_ca(directory), user, client=True, days=days or 825)
        paths = write_pair(directory, user, pair, force=force)
    except (OSError, ValueError) as exc:
        error(str(exc))
        return EXIT_USAGE
    click.echo(f"wrote {paths[0]} and {paths[1]} for user {user}")
    return EXIT_OK
