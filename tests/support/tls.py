"""A throwaway certificate authority for the local servers that speak TLS.

`trustme` makes a CA and a certificate for 127.0.0.1 in memory; the CA's PEM file
is what a user would name in `REQUESTS_CA_BUNDLE`. Nothing here touches the
machine's own trust store.
"""

from __future__ import annotations

import dataclasses
import ssl
import typing as t

import trustme

if t.TYPE_CHECKING:
    import pathlib


@dataclasses.dataclass(frozen=True)
class LocalTLS:
    """A server context for 127.0.0.1 and the CA bundle that trusts it."""

    server_context: ssl.SSLContext
    ca_bundle: pathlib.Path


def local_tls(folder: pathlib.Path) -> LocalTLS:
    """A new CA, a certificate it signed for 127.0.0.1, and the CA's PEM in `folder`."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = folder / "local-ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    return LocalTLS(context, bundle)
