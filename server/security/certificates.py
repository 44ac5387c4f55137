"""What the server's certificate files say as X.509, checked before any client connects.

gRPC loads a certificate past its notAfter, one made for clients (extendedKeyUsage
without serverAuth) or a client certificate where the client CA belongs without a
word; clients then see only a failed handshake, naming neither the file nor the
reason. Each check here names the file and what to do instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = [
    "EXPIRY_WARNING",
    "client_ca_problem",
    "expiry_warning",
    "read_certificates",
    "server_certificate_problem",
]

EXPIRY_WARNING = timedelta(days=30)
"""How long before the server's certificate expires a start and ``--check`` warn: time
enough to have a new one issued."""

_REISSUE = 'issue a new one (docs/operations.md, "Certificates")'


def read_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates of the PEM file ``path``, in order; ValueError saying why none
    can be read (OSError when the file cannot be)."""
    try:
        found = x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError as exc:
        raise ValueError(
            f"{str(path)!r} holds no PEM certificate that can be read ({exc})"
        ) from None
    return found


def server_certificate_problem(path: Path, now: datetime) -> str | None:
    """Why the chain in ``path`` cannot serve as the server's at ``now`` (a certificate
    expired or not yet valid, the first one not for servers); None if it can."""
    try:
        chain = read_certificates(path)
    except (OSError, ValueError) as exc:
        return str(exc)
    for place, certificate in enumerate(chain):
        which = repr(str(path)) if place == 0 else f"{str(path)!r} (chain certificate {place + 1})"
        after, before = certificate.not_valid_after_utc, certificate.not_valid_before_utc
        if now >= after:
            return (
                f"{which} expired at {_when(after)} (its notAfter): clients refuse it in the "
                f"TLS handshake; {_REISSUE}"
            )
        if now < before:
            return (
                f"{which} is not valid before {_when(before)} (its notBefore; it is "
                f"{_when(now)} here): clients refuse it until then; check this machine's "
                f"clock, or {_REISSUE}"
            )
    purposes = _extended_key_usage(chain[0])
    if purposes is not None and not purposes & {"serverAuth", "anyExtendedKeyUsage"}:
        return (
            f"{str(path)!r} is a certificate for {', '.join(sorted(purposes))} only (its "
            "extendedKeyUsage lacks serverAuth: a client's certificate?); clients refuse it "
            f"as a server's: give the server's certificate, or {_REISSUE} with "
            "extendedKeyUsage=serverAuth"
        )
    return None


def client_ca_problem(path: Path) -> str | None:
    """Why ``path`` cannot name the CA(s) of client certificates (a certificate in it is
    not a CA's); None if it can."""
    try:
        certificates = read_certificates(path)
    except (OSError, ValueError) as exc:
        return str(exc)
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            constraint = f"CA:{str(is_ca).upper()}"
        except x509.ExtensionNotFound:
            is_ca, constraint = False, "no basicConstraints"
        if not is_ca:
            return (
                f"{str(path)!r} holds a certificate that is not a CA's "
                f"({certificate.subject.rfc4514_string()!r}, {constraint}): client_ca names "
                "the CA that signs client certificates (ca.pem), not a client's or the "
                "server's own certificate"
            )
    return None


def expiry_warning(path: Path, now: datetime) -> str | None:
    """A warning when a certificate of ``path`` expires within :data:`EXPIRY_WARNING` of
    ``now``; None otherwise (and for a file that cannot be read: the start refuses it)."""
    try:
        after = min(c.not_valid_after_utc for c in read_certificates(path))
    except (OSError, ValueError):
        return None
    left = after - now
    if not timedelta(0) < left <= EXPIRY_WARNING:
        return None
    return (
        f"{str(path)!r} expires at {_when(after)} (in {left.days} days): from then on "
        f"clients refuse it in the TLS handshake; {_REISSUE} before"
    )


def _extended_key_usage(certificate: x509.Certificate) -> set[str] | None:
    """The purposes the certificate's extendedKeyUsage names (None: it has none, so any
    purpose is allowed)."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    names = {
        v: k for k, v in vars(ExtendedKeyUsageOID).items() if isinstance(v, x509.ObjectIdentifier)
    }
    return {_camel(names[oid]) if oid in names else oid.dotted_string for oid in usage}


def _camel(constant: str) -> str:
    """``SERVER_AUTH`` as X.509 names it: ``serverAuth``."""
    first, *rest = constant.lower().split("_")
    return first + "".join(part.title() for part in rest)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
