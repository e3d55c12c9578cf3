"""POST bodies to the Events API host over kept-alive connections, one per sender thread.

The standard library's `http.client` does the HTTP: a POST costs it about 70 µs of
CPU, against 170 µs through urllib3's pool manager and 400 µs through a
`requests.Session` (`benchmarks`), and at 100 batches a request that was as much
as converting a hundred records. What those libraries added is done once here:
TLS trusts `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE`, else certifi's bundle, as
`requests` would; a connection the server closed while idle is noticed before it
is reused; a proxy named by `HTTPS_PROXY`/`HTTP_PROXY` (and not excluded by
`NO_PROXY`) is honoured by handing the requests to urllib3's proxy manager (with
the login its URL holds), the one case plain connections do not cover.

Failures come back as `TransportTimeout` and `TransportFailure`, each with a
short reason; the client decides what is retried. Two TLS failures no retry can
fix have their own classes: a certificate that does not verify is
`TransportUntrusted`; a handshake the server refuses or cannot take part in (it
speaks plain HTTP on that port, or shares no protocol version or cipher with us)
is `TransportTLSRefused`. Other TLS errors (a connection cut mid-handshake, a
corrupted record) are plain failures and retried.
"""

from __future__ import annotations

import http.client
import os
import re
import select
import ssl
import threading
import typing as t
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from requests.utils import get_environ_proxies


class TransportTimeout(Exception):  # noqa: N818 - reads as what happened
    """The server did not answer within the timeout."""


class TransportFailure(Exception):  # noqa: N818
    """The connection failed or broke (refused, reset, closed mid-answer, TLS)."""


class TransportUntrusted(TransportFailure):
    """The server's TLS certificate did not verify against the trusted CA bundle."""


class TransportProxyLogin(TransportFailure):
    """The proxy refused to open a tunnel without (or with that) login: HTTP 407."""


class TransportTLSRefused(TransportFailure):
    """The TLS handshake failed the way it will on every attempt."""

    def __init__(self, reason: str, *, plain_http: bool) -> None:
        """Keep OpenSSL's reason, and whether it means the port speaks plain HTTP."""
        super().__init__(reason)
        self.plain_http = plain_http


#: OpenSSL's reason when the server answers the ClientHello in plain HTTP: 1.1 and
#: 3.0 say WRONG_VERSION_NUMBER, 3.2 and later RECORD_LAYER_FAILURE, some builds
#: read the HTTP status line as a record length.
PLAIN_HTTP_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"}
)
#: Handshakes refused over what each end is configured to accept (versions, ciphers,
#: key sizes, server name, a client certificate): the same on every attempt.
REFUSED_HANDSHAKE_REASONS = frozenset(
    {
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "NO_CIPHERS_AVAILABLE",
        "NO_SHARED_CIPHER",
        "WRONG_SSL_VERSION",
        "TLSV1_ALERT_INSUFFICIENT_SECURITY",
        "TLSV1_UNRECOGNIZED_NAME",
        "TLSV1_ALERT_ACCESS_DENIED",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "UNSAFE_LEGACY_RENEGOTIATION_DISABLED",
        "DH_KEY_TOO_SMALL",
        "EE_KEY_TOO_SMALL",
        "CA_KEY_TOO_SMALL",
        "CA_MD_TOO_WEAK",
    }
)
_SSL_DECORATION = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")


class Reply(t.NamedTuple):
    """What the server answered."""

    status: int
    #: Header names in lower case.
    headers: dict[str, str]
    data: bytes
    reason: str


def ca_bundle() -> str:
    """The CA bundle `requests` would trust."""
    return (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    )


class Transport:
    """Posts to one API base URL; safe to call from several threads at once."""

    def __init__(self, base_url: str, *, connections: int, timeout_s: float) -> None:
        """Prepare connections (opened on first use) or, behind a proxy, urllib3's manager.

        Args:
            base_url: The API's base URL (scheme, host, port and path prefix).
            connections: How many requests may be in flight at once.
            timeout_s: Seconds allowed to connect and between bytes of the answer.
        """
        parts = urlsplit(base_url)
        self._https = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._context = ssl.create_default_context(cafile=ca_bundle()) if self._https else None
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        proxy = get_environ_proxies(base_url).get(parts.scheme.lower())
        #: The proxy's password and Proxy-Authorization token, for the client to mask.
        self.proxy_secrets: tuple[str, ...] = ()
        self._proxied: urllib3.ProxyManager | None = None
        if proxy:
            self._proxied, self.proxy_secrets = _proxy_manager(proxy, connections)

    def post(self, path: str, body: bytes, headers: t.Mapping[str, str]) -> Reply:
        """POST `body` to `path` under the base URL and read the whole answer.

        Raises:
            TransportTimeout: No answer within the timeout.
            TransportFailure: The connection could not be made or broke.
        """
        target = self._prefix + path
        if self._proxied is not None:
            return self._post_proxied(target, body, headers)
        conn = self._connection()
        fresh = conn.sock is None  # so a TLS error now comes from the handshake
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except ssl.SSLCertVerificationError as exc:
            self._discard(conn)
            raise TransportUntrusted(_verify_reason(exc)) from exc
        except TimeoutError as exc:  # socket.timeout is TimeoutError
            self._discard(conn)
            raise TransportTimeout(str(exc) or "timed out") from exc
        except (OSError, http.client.HTTPException) as exc:
            self._discard(conn)
            raise _failure(exc, handshake=fresh) from exc
        if response.will_close:
            self._discard(conn)
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, headers, data, response.reason)

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's connection, a new one if it has none or the server closed it."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and _closed_by_peer(conn):
            self._discard(conn)
            conn = None
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout_s, context=self._context
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _post_proxied(self, target: str, body: bytes, headers: t.Mapping[str, str]) -> Reply:
        assert self._proxied is not None  # noqa: S101 - only called when set
        scheme = "https" if self._https else "http"
        port = f":{self._port}" if self._port else ""
        try:
            response = self._proxied.request(
                "POST",
                f"{scheme}://{self._host}{port}{target}",
                body=body,
                headers=dict(headers),
                timeout=urllib3.Timeout(connect=self._timeout_s, read=self._timeout_s),
                retries=False,
            )
        except urllib3.exceptions.TimeoutError as exc:
            raise TransportTimeout(str(exc)) from exc
        except urllib3.exceptions.HTTPError as exc:
            tunnel = _nested(exc, OSError)  # http.client: "Tunnel connection failed: 407 ..."
            if isinstance(exc, urllib3.exceptions.ProxyError) and " 407 " in f"{tunnel} ":
                raise TransportProxyLogin(str(tunnel)) from exc
            untrusted = _nested(exc, ssl.SSLCertVerificationError)
            if untrusted is not None:
                raise TransportUntrusted(_verify_reason(untrusted)) from exc
            tls = _nested(exc, ssl.SSLError)
            # urllib3 does not say whether its connection was new: judged by reason.
            raise _failure(tls if tls is not None else exc, handshake=True) from exc
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Reply(response.status, headers, response.data, response.reason or "")

    def close(self) -> None:
        """Close every connection this transport opened."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        if self._proxied is not None:
            self._proxied.clear()


def _proxy_manager(proxy: str, connections: int) -> tuple[urllib3.ProxyManager, tuple[str, ...]]:
    """urllib3's manager for `proxy`, sending the `user:password@` its URL holds.

    urllib3 ignores a proxy URL's credentials (requests, curl and botocore send them
    as Proxy-Authorization): a proxy that asks for a login answered every request 407.
    """
    parts = urllib3.util.parse_url(proxy)
    options: dict[str, t.Any] = {"maxsize": connections, "ca_certs": ca_bundle()}
    if not parts.auth:
        return urllib3.ProxyManager(proxy, **options), ()
    user, _, password = parts.auth.partition(":")
    login = f"{unquote(user)}:{unquote(password)}"
    headers = urllib3.util.make_headers(proxy_basic_auth=login, proxy_basic_auth_encoding="utf-8")
    manager = urllib3.ProxyManager(parts._replace(auth=None).url, proxy_headers=headers, **options)
    token = headers["proxy-authorization"].removeprefix("Basic ")
    return manager, (unquote(password), login, token)


_Nested = t.TypeVar("_Nested", bound=BaseException)


def _nested(exc: BaseException, kind: type[_Nested]) -> _Nested | None:
    """The `kind` of error urllib3 wrapped in `exc` (as an argument or a cause), if any."""
    seen: BaseException | None = exc
    for _ in range(8):  # urllib3 nests a few levels at most
        if seen is None or isinstance(seen, kind):
            return seen
        nested = [a for a in seen.args if isinstance(a, BaseException)]
        seen = nested[0] if nested else seen.__cause__ or seen.__context__
    return None


def _failure(exc: BaseException, *, handshake: bool) -> TransportFailure:
    """The failure to raise for `exc`: TLS refusals apart, and OpenSSL's words kept.

    Only a `handshake` (a connection opened for this request) can be refused for
    good: the same reasons on a connection that already carried requests are a
    fault in transit, and retried. Without its words an SSL error read only
    "SSLError", whatever went wrong.
    """
    if not isinstance(exc, ssl.SSLError):
        return TransportFailure(type(exc).__name__)
    words = _SSL_DECORATION.sub("", str(exc.strerror or exc)) or str(exc.reason or "")
    if handshake and exc.reason in PLAIN_HTTP_REASONS:
        return TransportTLSRefused(words, plain_http=True)
    if handshake and exc.reason in REFUSED_HANDSHAKE_REASONS:
        return TransportTLSRefused(words, plain_http=False)
    return TransportFailure(f"{type(exc).__name__}: {words}" if words else type(exc).__name__)


def _verify_reason(exc: ssl.SSLCertVerificationError) -> str:
    """OpenSSL's words for why, e.g. 'self-signed certificate in certificate chain'."""
    return str(exc.verify_message or exc.reason or "certificate verify failed")


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive socket has been closed (or written to) by the server.

    An idle connection should have nothing to read; anything readable is the
    server's end of file, and the next request on it would fail.
    """
    sock = conn.sock
    if sock is None:
        return False  # not connected yet: http.client connects on the next request
    try:
        if hasattr(select, "poll"):  # select() refuses descriptors above 1023
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
