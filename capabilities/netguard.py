"""Outbound-request policy for the ``http`` capability (SECURITY.md rules 8 and 9).

Pure checks, no I/O except the injectable resolver:

- ``Grants.parse`` turns the user's ``--allow-domain`` entries (``HOST`` or ``HOST:PORT``) into
  exact, normalised (lower-case, punycode, no trailing dot, canonical IP) host/port pairs;
  ``Grants.from_user`` (what configuration uses) also refuses entries that grant more than
  they look like: wildcards, CIDR ranges, ``0.0.0.0``/``::``, loopback without a port and
  private addresses (``broad_entry_reason``).
- ``check_url`` validates one URL the guest (or a redirect) asked for and returns it parsed.
- ``connect_addresses`` is called at connect time: it resolves the host and returns only the
  addresses that may be dialled, so the address that was checked is the address connected to.

Every refusal is a ``GuestError`` whose detail says what was refused and why; the model cannot
widen a grant, so EACCESS details tell it that the user must grant with ``--allow-domain``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from rt.codes import Err
from rt.errors import CapabilityError
from rt.host import GuestError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_CHARS = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}
_NAME_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")
# Forms that inet_aton reads as an IPv4 address: 2130706433, 0x7f.1, 0177.0.0.1, 127.1.
_INET_ATON_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_EXTRA_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),  # CGNAT (shared address space)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _grant_hint(hostport: str) -> str:
    return f"the user must grant it with --allow-domain {hostport}"


# ---- hosts ------------------------------------------------------------------------------------
def parse_ip(host: str) -> IPAddress | None:
    """The address an IP-literal host means (any inet_aton form, IPv6, IPv4-mapped IPv6)."""
    h = host.strip("[]")
    if ":" in h:
        try:
            ip6 = ipaddress.IPv6Address(h)
        except ValueError:
            return None
        return ip6.ipv4_mapped or ip6
    if _INET_ATON_RE.match(h):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            return None
    return None


def normalise_host(host: str) -> str:
    """Lower-case, strip one trailing dot, canonicalise IP literals (``0x7f.1`` -> ``127.0.0.1``).

    ``host`` must already be ASCII (punycode): httpx's ``raw_host``. Raises ``ValueError``
    for anything that is neither a valid DNS name nor an IP literal.
    """
    h = host.lower()
    if h.endswith(".") and not h.startswith("["):
        h = h[:-1]
    ip = parse_ip(h)
    if ip is not None:
        return str(ip)
    if not _NAME_RE.match(h) or len(h) > 253:
        raise ValueError(f"invalid host {host!r}")
    return h


def hostport(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


# ---- grants -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grants:
    """The user's exact host allow-list. ``port`` None means "the scheme's default port only"."""

    entries: frozenset[tuple[str, int | None]]

    @classmethod
    def parse(cls, allow: Iterable[str]) -> Grants:
        """Exact entries, normalised; ``CapabilityError`` for one that is not HOST[:PORT].

        This accepts any single host (a literal private address too: the connect-time check
        still refuses it). What the user writes goes through ``Grants.from_user``, which also
        refuses the entries that would grant more than they look like they do.
        """
        entries: set[tuple[str, int | None]] = set()
        for raw in allow:
            text = _bracket_bare_ipv6(raw.strip())
            if not text or _CONTROL_OR_SPACE.search(text) or any(c in text for c in "/\\@?#"):
                raise CapabilityError(
                    f"bad --allow-domain entry {raw!r}: expected HOST or HOST:PORT"
                )
            try:
                url = httpx.URL(f"http://{text}/")
                host = normalise_host(url.raw_host.decode("ascii"))
            except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
                raise CapabilityError(f"bad --allow-domain entry {raw!r}: {exc}") from exc
            explicit = _explicit_port(text)
            if explicit is not None and not 0 < explicit < 65536:
                raise CapabilityError(f"bad --allow-domain entry {raw!r}: port out of range")
            entries.add((host, explicit))
        return cls(frozenset(entries))

    @classmethod
    def from_user(cls, allow: Iterable[str]) -> Grants:
        """The user's entries (``--allow-domain``, ``allow_domains``), refusing broad ones.

        Refused with the reason: wildcards and CIDR ranges (the list is exact hosts), the
        unspecified addresses ``0.0.0.0`` and ``::``, any loopback host (``localhost``,
        ``127.0.0.1``, ``::1``) without an explicit port, and every other address that is not
        globally routable (private, link-local, ...), which http never connects to. An exact
        loopback ``HOST:PORT`` is granted: ``notes()`` says that it is loopback.
        """
        allow = list(allow)
        for raw in allow:
            reason = broad_entry_reason(raw)
            if reason is not None:
                raise CapabilityError(f"allow-list entry {raw.strip()!r} refused: {reason}")
        return cls.parse(allow)

    def notes(self) -> list[str]:
        """One line per granted loopback entry, for the user to see what it opens."""
        return [
            f"allow-list entry {hostport(h, p)} is loopback: programs may reach the service "
            f"on port {p} of this machine"
            for h, p in sorted(self.entries, key=lambda e: (e[0], e[1] or 0))
            if p is not None and _is_loopback_name(h)
        ]

    def permits(self, host: str, port: int | None, scheme: str) -> bool:
        """``port`` is the URL's explicit port (None when the URL gave none or the default)."""
        effective = port if port is not None else DEFAULT_PORTS[scheme]
        if port is None and (host, None) in self.entries:
            return True
        return (host, effective) in self.entries

    def loopback_exempt(self, host: str, port: int) -> bool:
        """True when ``host:port`` was granted with an explicit port and names loopback."""
        if (host, port) not in self.entries:
            return False
        ip = parse_ip(host)
        return host == "localhost" or (ip is not None and ip.is_loopback)

    def __str__(self) -> str:
        return ", ".join(sorted(hostport(h, p) for h, p in self.entries)) or "(none)"


def _bracket_bare_ipv6(text: str) -> str:
    """``::1`` and ``::`` as written, read as the IPv6 hosts ``[::1]`` and ``[::]``."""
    if text.count(":") > 1 and not text.startswith("["):
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return text
        return f"[{text}]"
    return text


def _is_loopback_name(host: str) -> bool:
    """``localhost`` (and names under it, RFC 6761) or a loopback address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = parse_ip(host)
    return ip is not None and ip.is_loopback


_CIDR_RE = re.compile(r"^\[?[0-9a-fA-F:.]+\]?/\d{1,3}$")


def broad_entry_reason(raw: str) -> str | None:
    """Why an allow-list entry grants more than it looks like it does, or None.

    Entries that are not HOST[:PORT] at all are left to ``Grants.parse``.
    """
    text = raw.strip()
    if "*" in text:
        return "wildcards are not supported: list each host exactly (api.example.com)"
    if _CIDR_RE.match(text):
        return "address ranges (CIDR) are not supported: list each host exactly"
    try:
        grants = Grants.parse([text])
    except CapabilityError:
        return None
    ((host, port),) = grants.entries
    ip = parse_ip(host)
    if ip is not None and ip.is_unspecified:
        return f"{host} is the unspecified address (every interface of this machine)"
    if _is_loopback_name(host):
        if host != "localhost" and ip is None:
            return f"{host} is a loopback name: grant localhost:PORT or 127.0.0.1:PORT"
        if port is None:
            shown = hostport(host, None)
            return (
                f"{shown} is this machine (loopback): grant the one local service you mean "
                f"with an explicit port, {shown}:PORT"
            )
        return None
    if ip is not None:
        reason = refusal_reason(ip)
        if reason is not None:
            return (
                f"{host} is {reason}; http never connects to such addresses "
                "(only an exact loopback HOST:PORT is allowed)"
            )
    return None


def _explicit_port(text: str) -> int | None:
    """The port written in an allow-list entry, if any (IPv6 entries need brackets)."""
    tail = text.rsplit("]", 1)[-1] if text.startswith("[") else text
    if tail.count(":") != 1:
        return None
    digits = tail.rsplit(":", 1)[1]
    if not digits.isdigit():
        raise CapabilityError(f"bad --allow-domain entry {text!r}: port must be a number")
    return int(digits)


# ---- URLs -------------------------------------------------------------------------------------
def check_url(text: str, grants: Grants, *, what: str = "URL") -> httpx.URL:
    """Parse and vet one URL: http(s) only, no userinfo, granted host and port, public literal IP.

    Leading/trailing whitespace is ignored; whitespace or control characters inside are EPARSE.
    """
    text = text.strip()
    if not text:
        raise GuestError(Err.EPARSE, f"empty {what}")
    if len(text) > MAX_URL_CHARS:
        raise GuestError(Err.EPARSE, f"{what} longer than {MAX_URL_CHARS} characters")
    if _CONTROL_OR_SPACE.search(text):
        raise GuestError(Err.EPARSE, f"{what} contains whitespace or control characters")
    if "\\" in text:
        raise GuestError(
            Err.EACCESS, f"{what} contains a backslash (refused: parsers disagree on it)"
        )
    try:
        url = httpx.URL(text)
        raw_host = url.raw_host.decode("ascii")
        port = url.port
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise GuestError(Err.EPARSE, f"cannot parse {what}: {exc}") from exc
    if url.scheme not in DEFAULT_PORTS:
        raise GuestError(
            Err.EACCESS, f"scheme {url.scheme or '(none)'!r} refused: only http and https"
        )
    if url.userinfo or "@" in re.split(r"[/?#]", text.split("//", 1)[-1], maxsplit=1)[0]:
        raise GuestError(Err.EACCESS, f"{what} with user info (user@host) refused")
    if not raw_host:
        raise GuestError(Err.EPARSE, f"{what} has no host")
    if port is not None and not 0 < port < 65536:
        raise GuestError(Err.EPARSE, f"port {port} out of range")
    try:
        host = normalise_host(raw_host)
    except ValueError as exc:
        raise GuestError(Err.EPARSE, f"{what} has an invalid host {raw_host!r}") from exc
    if not grants.permits(host, port, url.scheme):
        shown = hostport(host, port)
        raise GuestError(
            Err.EACCESS,
            f"host {shown} is not granted (granted: {grants}); {_grant_hint(shown)}",
        )
    ip = parse_ip(host)
    if ip is not None:
        vet_address(ip, host, port or DEFAULT_PORTS[url.scheme], grants)
    return url


# ---- addresses --------------------------------------------------------------------------------
def refusal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a globally routable unicast address, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return refusal_reason(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        inner = refusal_reason(embedded) if embedded is not None else None
        if inner is not None:
            return f"a tunnel address wrapping {embedded}, which is {inner}"
        if int(ip) >> 32 == 0 and int(ip) > 1:
            return "an IPv4-compatible IPv6 address"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local (cloud metadata lives here)", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("shared or special-purpose", any(ip in net for net in _EXTRA_BLOCKED)),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("not globally routable", not ip.is_global),
    )
    for name, hit in checks:
        if hit:
            return name
    return None


def vet_address(ip: IPAddress, host: str, port: int, grants: Grants) -> None:
    """EACCESS unless ``ip`` is public, or loopback under an explicit loopback grant."""
    if grants.loopback_exempt(host, port) and ip.is_loopback:
        return
    reason = refusal_reason(ip)
    if reason is None:
        return
    hint = ""
    if ip.is_loopback:
        hint = (
            f"; only an explicit grant of {hostport(str(ip), port)} or localhost:{port} allows it"
        )
    raise GuestError(
        Err.EACCESS,
        f"{hostport(host, port)} resolves to {ip}, which is {reason}: refused{hint}",
    )


def system_resolver(host: str, port: int) -> list[str]:
    """Addresses of ``host`` from the system resolver, in its preferred order, deduplicated."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


def connect_addresses(host: str, port: int, grants: Grants, resolver: Resolver) -> list[str]:
    """The checked addresses to dial for ``host:port``; EACCESS if any address is refused.

    A name with one bad address is refused outright (a rebinding or split-horizon answer is
    not something to route around). IPv4-mapped answers are dialled as plain IPv4.
    """
    name = normalise_host(host)
    literal = parse_ip(name)
    if literal is not None:
        vet_address(literal, name, port, grants)
        return [str(literal)]
    answers = resolver(name, port)
    if not answers:
        raise OSError(f"no address for {name}")
    out: list[str] = []
    for answer in answers:
        ip = parse_ip(answer.split("%", 1)[0])
        if ip is None:
            raise GuestError(Err.EACCESS, f"{name} resolved to an unreadable address {answer!r}")
        vet_address(ip, name, port, grants)
        out.append(str(ip))
    return out


# ---- the pinned transport ---------------------------------------------------------------------
@dataclass(frozen=True)
class Deadline:
    """One absolute deadline for a whole request (all hops, connect, headers and body)."""

    at: float
    cancel: threading.Event | None = None
    seconds: float = 0.0  # the budget it was made with, for messages

    @classmethod
    def after(cls, seconds: float, cancel: threading.Event | None = None) -> Deadline:
        return cls(time.monotonic() + seconds, cancel, seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0 or (self.cancel is not None and self.cancel.is_set())

    def clamp(self, timeout: float | None, exc: type[Exception]) -> float:
        """``timeout`` cut to what is left; raises ``exc`` once nothing is."""
        if self.expired():
            raise exc("whole-request deadline passed")
        left = self.remaining()
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write is bounded by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        inner = self._inner.start_tls(ssl_context, server_hostname, left)
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves and vets the host itself, then dials the vetted IP (no DNS between check and
    connect). TLS still uses the URL's host name for SNI and certificate checks."""

    def __init__(self, grants: Grants, resolver: Resolver, deadline: Deadline) -> None:
        self._grants = grants
        self._resolver = resolver
        self._deadline = deadline
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        try:
            addresses = connect_addresses(host, port, self._grants, self._resolver)
        except (OSError, UnicodeError, ValueError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception | None = None
        for ip in addresses:
            left = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._tcp.connect_tcp(ip, port, left, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        assert failure is not None  # addresses is never empty
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self._deadline.remaining()))


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport (request/response mapping, exception mapping) over a connection
    pool whose network backend is ``_GuardedBackend``: every TCP connection, including each
    redirect hop's, is vetted at connect time. No proxies, no environment, HTTP/1.1 only.

    httpx 0.28's ``HTTPTransport`` keeps its pool in ``_pool`` and only uses it in
    ``handle_request``/``close``; this class builds that pool itself instead of calling
    ``super().__init__`` (pyproject pins httpx < 0.29).
    """

    def __init__(
        self,
        grants: Grants,
        resolver: Resolver,
        deadline: Deadline,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls or httpx.create_ssl_context(trust_env=False),
            max_connections=4,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            network_backend=_GuardedBackend(grants, resolver, deadline),
        )
