"""The http capability against real servers on 127.0.0.1 (started here), driven as WAT programs.

Nothing leaves the machine: every name other than the test servers' is refused before any
connection, and names resolve through injected resolvers.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from capabilities.base import describe
from capabilities.http import HttpCapability
from capabilities.httpfetch import Fetcher, read_body
from capabilities.netguard import (
    Deadline,
    Grants,
    Resolver,
    check_url,
    normalise_host,
    refusal_reason,
)
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import RunResult, Runtime
from rt.errors import CapabilityError
from rt.host import GuestError, RunContext
from rt.limits import Limits

BOMB = gzip.compress(b"\0" * 10_000_000)


# ---- servers ----------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path
        if path == "/hello":
            self._send(200, b"hello")
        elif path == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"no such page here")
        elif path == "/redirect":
            self._send(302, b"", {"Location": query["to"][0]})
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            if n == 0:
                self._send(200, b"end")
            else:  # alternate between the two granted spellings of loopback
                host = "localhost" if n % 2 else "127.0.0.1"
                port = cast(ThreadingHTTPServer, self.server).server_port
                self._send(301, b"", {"Location": f"http://{host}:{port}/chain/{n - 1}"})
        elif path == "/bomb":
            self._send(200, BOMB, {"Content-Encoding": "gzip"})
        elif path == "/gzip":
            self._send(200, gzip.compress(b"small gzip body"), {"Content-Encoding": "gzip"})
        elif path == "/deflate":
            self._send(200, zlib.compress(b"zlib deflate body"), {"Content-Encoding": "deflate"})
        elif path == "/big":
            self._send(200, b"x" * 2_000_000)
        elif path == "/binary":
            self._send(200, b"\xff\xfe\x00raw")
        else:
            self._send(404, b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/see-other":
            self._send(303, b"", {"Location": "/hello"})
            return
        ctype = self.headers.get("Content-Type", "")
        self._send(200, f"{ctype}|".encode() + body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that stop reading at a cap reset the connection: expected here


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n"


def _trickle_server(
    stop: threading.Event, *, trickle_head: bool
) -> tuple[int, threading.Thread, socket.socket]:
    """Answer one request with a 200-byte body sent 1 byte every 0.2 s (40 s unless stopped);
    with ``trickle_head`` the status line and headers trickle the same way."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                if not trickle_head:
                    conn.sendall(HEAD)
                for b in (HEAD if trickle_head else b"") + b"x" * 200:
                    conn.sendall(bytes([b]))
                    if stop.wait(0.2):
                        return
            except OSError:  # the client hung up: that is the point
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, listener


# ---- helpers ----------------------------------------------------------------------------------
GET = """
(argv 0 $url)
(local $body i32) (local $e i32)
(call $http.get (local.get $url)) (local.set $e) (local.set $body)
(check $e)
(resv $body)
(i32.const 0)
"""

POST = """
(argv 0 $url) (argv 1 $data) (argv 2 $ctype)
(local $body i32) (local $e i32)
(call $http.post (local.get $url) (local.get $data) (local.get $ctype)) (local.set $e) (local.set $body)
(check $e)
(resv $body)
(i32.const 0)
"""


def run(cap: HttpCapability, body: str, *args: str, timeout_s: float = 30.0) -> RunResult:
    runtime = Runtime(
        [*SysCapability().functions(), *cap.functions()], limits=Limits(timeout_s=timeout_s)
    )
    return runtime.run(body, list(args))


def get(cap: HttpCapability, url: str) -> RunResult:
    return run(cap, GET, url)


def resolver_to(*ips: str) -> tuple[list[tuple[str, int]], Resolver]:
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return list(ips)

    return calls, resolve


def ctx(seconds: float = 30.0) -> RunContext:
    return RunContext(
        args=[],
        max_result_bytes=1 << 20,
        max_debug_lines=50,
        deadline=time.monotonic() + seconds,
        cancel=threading.Event(),
    )


def refused(result: RunResult, code: Err, *needles: str) -> None:
    assert result.status == code, (result.status, result.debug)
    text = "\n".join(result.debug)
    for needle in needles:
        assert needle in text, (needle, result.debug)


# ---- allow-list -------------------------------------------------------------------------------
def test_granted_host_succeeds(port: int) -> None:
    result = get(HttpCapability([f"127.0.0.1:{port}"]), f"http://127.0.0.1:{port}/hello")
    assert (result.status, result.results) == (0, ["hello"])


def test_other_host_is_eacces_and_names_the_grant_flag(port: int) -> None:
    calls, resolve = resolver_to("93.184.216.34")
    result = get(HttpCapability([f"127.0.0.1:{port}"], resolver=resolve), "http://example.com/")
    refused(result, Err.EACCESS, "example.com", "--allow-domain")
    assert calls == []  # an ungranted name is not even looked up


def test_case_and_trailing_dot_are_normalised_and_the_name_reaches_the_server(port: int) -> None:
    calls, resolve = resolver_to("127.0.0.1")
    cap = HttpCapability([f"LocalHost.:{port}"], resolver=resolve)
    result = get(cap, f"http://LOCALHOST.:{port}/host")
    assert result.status == 0, result.debug
    assert result.results[0].lower().startswith("localhost")  # Host header kept, IP dialled
    assert calls == [("localhost", port)]


@pytest.mark.parametrize(
    "grant,url",
    [
        ("127.0.0.1:{other}", "http://127.0.0.1:{port}/hello"),  # port must match
        ("127.0.0.1:{port}", "http://127.0.0.1:{other}/hello"),
        ("example.com", "http://example.com:{port}/"),  # explicit port needs an explicit grant
        ("example.com:{port}", "http://example.com/"),
    ],
)
def test_port_must_match(port: int, grant: str, url: str) -> None:
    other = port + 1 if port < 65535 else port - 1
    cap = HttpCapability([grant.format(port=port, other=other)])
    refused(get(cap, url.format(port=port, other=other)), Err.EACCESS, "not granted")


def test_loopback_needs_a_grant_with_a_port(port: int) -> None:
    refused(get(HttpCapability(["127.0.0.1"]), "http://127.0.0.1/"), Err.EACCESS, "loopback")


def test_explicitly_granted_private_address_is_still_refused() -> None:
    refused(get(HttpCapability(["10.0.0.1:80"]), "http://10.0.0.1:80/"), Err.EACCESS, "private")


@pytest.mark.parametrize(
    "url,code",
    [
        ("http://127.0.0.1:{port}@evil.test/hello", Err.EACCESS),
        ("http://evil.test\\@127.0.0.1:{port}/hello", Err.EACCESS),
        ("http://user:pw@127.0.0.1:{port}/hello", Err.EACCESS),
        ("ftp://127.0.0.1:{port}/hello", Err.EACCESS),
        ("file:///etc/passwd", Err.EACCESS),
        ("http://127.0.0.1:{port}/he llo", Err.EPARSE),
        ("http://127.0.0.1:{port}/\x00", Err.EPARSE),
        ("http://exa%6dple.com/", Err.EPARSE),
        ("not a url", Err.EPARSE),
    ],
)
def test_userinfo_and_other_url_tricks_are_refused(port: int, url: str, code: Err) -> None:
    result = run(HttpCapability([f"127.0.0.1:{port}", "example.com"]), GET, url.format(port=port))
    refused(result, code)


# ---- IP literals and resolved addresses ------------------------------------------------------
LITERALS = ["2130706433", "0x7f.1", "127.1", "0x7f.0.0.1", "[::ffff:127.0.0.1]", "0177.0.0.1"]


@pytest.mark.parametrize("host", LITERALS)
def test_loopback_literal_forms_are_refused_without_that_exact_grant(port: int, host: str) -> None:
    cap = HttpCapability([f"localhost:{port}", f"127.0.0.1:{port + 1}"])
    result = get(cap, f"http://{host}:{port}/hello")
    assert result.status in (Err.EACCESS, Err.EPARSE), result.debug  # 0177.0.0.1: httpx can't parse


@pytest.mark.parametrize("host", LITERALS[:-1])
def test_loopback_literal_forms_mean_the_address_they_name(port: int, host: str) -> None:
    result = get(HttpCapability([f"127.0.0.1:{port}"]), f"http://{host}:{port}/hello")
    assert (result.status, result.results) == (0, ["hello"]), result.debug


@pytest.mark.parametrize(
    "answer",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "fd00::1",
    ],
)
def test_names_resolving_to_internal_addresses_are_refused(port: int, answer: str) -> None:
    calls, resolve = resolver_to("93.184.216.34", answer)  # one bad answer spoils the name
    cap = HttpCapability([f"api.test:{port}"], resolver=resolve)
    refused(get(cap, f"http://api.test:{port}/hello"), Err.EACCESS, "api.test", "refused")
    assert calls == [("api.test", port)]


def test_injected_transport_still_refuses_internal_literals() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"secret"))
    cap = HttpCapability(["169.254.169.254"], transport=transport)
    refused(get(cap, "http://169.254.169.254/latest/meta-data/"), Err.EACCESS, "link-local")


# ---- redirects --------------------------------------------------------------------------------
def test_redirect_to_an_ungranted_host_is_eacces(port: int) -> None:
    url = f"http://127.0.0.1:{port}/redirect?to=http://evil.test:{port}/hello"
    refused(get(HttpCapability([f"127.0.0.1:{port}"]), url), Err.EACCESS, "evil.test")


def test_redirect_to_a_loopback_literal_from_a_granted_host_is_eacces(port: int) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(302, headers={"Location": "http://0x7f.1/admin"})
    )
    cap = HttpCapability(["example.com"], transport=transport)
    refused(get(cap, "http://example.com/"), Err.EACCESS, "127.0.0.1")


def test_redirect_chain_within_grants(port: int) -> None:
    calls, resolve = resolver_to("127.0.0.1")
    cap = HttpCapability([f"127.0.0.1:{port}", f"localhost:{port}"], resolver=resolve)
    result = get(cap, f"http://127.0.0.1:{port}/chain/4")
    assert (result.status, result.results) == (0, ["end"]), result.debug
    assert sum("redirect" in line for line in result.debug) == 4


def test_too_many_redirects_is_eremote(port: int) -> None:
    calls, resolve = resolver_to("127.0.0.1")
    cap = HttpCapability(
        [f"127.0.0.1:{port}", f"localhost:{port}"], resolver=resolve, max_redirects=2
    )
    refused(get(cap, f"http://127.0.0.1:{port}/chain/3"), Err.EREMOTE, "more than 2 redirects")


def test_post_303_becomes_get(port: int) -> None:
    result = run(
        HttpCapability([f"127.0.0.1:{port}"]), POST, f"http://127.0.0.1:{port}/see-other", "x", ""
    )
    assert (result.status, result.results) == (0, ["hello"]), result.debug


# ---- deadlines, sizes, statuses ---------------------------------------------------------------
@pytest.mark.parametrize("trickle_head", [True, False])
def test_trickling_server_is_stopped_by_the_whole_request_deadline(trickle_head: bool) -> None:
    stop = threading.Event()
    tport, thread, listener = _trickle_server(stop, trickle_head=trickle_head)
    try:
        cap = HttpCapability([f"127.0.0.1:{tport}"], request_timeout_s=1.0)
        refused(get(cap, f"http://127.0.0.1:{tport}/"), Err.EREMOTE, "deadline")
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_trickling_body_is_bounded_by_the_runs_remaining_time() -> None:
    stop = threading.Event()
    tport, thread, listener = _trickle_server(stop, trickle_head=False)
    try:
        cap = HttpCapability([f"127.0.0.1:{tport}"], request_timeout_s=60.0)
        with pytest.raises(GuestError) as info:
            cap.request(ctx(seconds=1.0), "GET", f"http://127.0.0.1:{tport}/")
        assert info.value.code == Err.EREMOTE
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_session_time_quota_bounds_each_request_then_refuses(port: int) -> None:
    stop = threading.Event()
    tport, thread, listener = _trickle_server(stop, trickle_head=False)
    try:
        cap = HttpCapability(
            [f"127.0.0.1:{tport}", f"127.0.0.1:{port}"],
            request_timeout_s=60.0,
            max_seconds_per_session=0.5,
        )
        refused(get(cap, f"http://127.0.0.1:{tport}/"), Err.EREMOTE, "deadline")
        assert cap.session_seconds >= 0.5
        refused(get(cap, f"http://127.0.0.1:{port}/hello"), Err.ENOMEM, "0.5 s per session")
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_gzip_bomb_stops_at_the_decoded_cap(port: int) -> None:
    result = get(HttpCapability([f"127.0.0.1:{port}"]), f"http://127.0.0.1:{port}/bomb")
    refused(result, Err.ENOMEM, "after decoding")


@pytest.mark.parametrize(
    "path,expected", [("/gzip", "small gzip body"), ("/deflate", "zlib deflate body")]
)
def test_compressed_bodies_are_decoded(port: int, path: str, expected: str) -> None:
    result = get(HttpCapability([f"127.0.0.1:{port}"]), f"http://127.0.0.1:{port}{path}")
    assert (result.status, result.results) == (0, [expected]), result.debug


def test_plain_body_over_the_cap_is_enomem(port: int) -> None:
    result = get(HttpCapability([f"127.0.0.1:{port}"]), f"http://127.0.0.1:{port}/big")
    refused(result, Err.ENOMEM, "cap")


@pytest.mark.parametrize("status", [404, 500])
def test_error_status_is_eremote_with_the_status_in_debug(port: int, status: int) -> None:
    result = get(HttpCapability([f"127.0.0.1:{port}"]), f"http://127.0.0.1:{port}/status/{status}")
    refused(result, Err.EREMOTE, f"HTTP {status}", "no such page")


def test_connection_refused_is_eremote_with_the_reason() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    result = get(HttpCapability([f"127.0.0.1:{closed}"]), f"http://127.0.0.1:{closed}/")
    refused(result, Err.EREMOTE, "ConnectError")


def test_non_utf8_body_is_returned_as_raw_bytes(port: int) -> None:
    c = ctx()
    body = HttpCapability([f"127.0.0.1:{port}"]).request(
        c, "GET", f"http://127.0.0.1:{port}/binary"
    )
    assert body == b"\xff\xfe\x00raw"
    assert any("not UTF-8" in line for line in c.debug)


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS server on 127.0.0.1 with a throwaway certificate for the name ``localhost``."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    tmp_path = tmp_path_factory.mktemp("tls")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = server_tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ssl.create_default_context(cafile=str(cert))
    server.shutdown()
    server.server_close()
    thread.join()


def _fetcher(allow: list[str], tls: ssl.SSLContext) -> Fetcher:
    _, resolve = resolver_to("127.0.0.1")
    return Fetcher(Grants.parse(allow), resolve, None, 1000, 5, lambda line: None, tls)


def test_https_dials_the_vetted_ip_but_verifies_the_name(
    tls_port: tuple[int, ssl.SSLContext],
) -> None:
    tport, tls = tls_port
    body = _fetcher([f"localhost:{tport}"], tls).fetch(
        "GET", f"https://localhost:{tport}/host", None, {}, Deadline.after(10)
    )
    assert body == f"localhost:{tport}".encode()


def test_https_certificate_is_checked(tls_port: tuple[int, ssl.SSLContext]) -> None:
    tport, tls = tls_port  # the certificate names localhost, not 127.0.0.1
    with pytest.raises(GuestError) as info:
        _fetcher([f"127.0.0.1:{tport}"], tls).fetch(
            "GET", f"https://127.0.0.1:{tport}/host", None, {}, Deadline.after(10)
        )
    assert info.value.code == Err.EREMOTE and "CERTIFICATE" in info.value.detail.upper()


# ---- post and quotas --------------------------------------------------------------------------
def test_post_echoes_body_and_content_type(port: int) -> None:
    cap = HttpCapability([f"127.0.0.1:{port}"])
    result = run(cap, POST, f"http://127.0.0.1:{port}/echo", '{"a": 1}', "application/json")
    assert (result.status, result.results) == (0, ['application/json|{"a": 1}']), result.debug


def test_post_body_over_the_cap_is_enomem(port: int) -> None:
    cap = HttpCapability([f"127.0.0.1:{port}"], max_request_bytes=4)
    refused(run(cap, POST, f"http://127.0.0.1:{port}/echo", "12345", "text/plain"), Err.ENOMEM)


def test_post_content_type_with_a_newline_is_eparse(port: int) -> None:
    cap = HttpCapability([f"127.0.0.1:{port}"])
    refused(
        run(cap, POST, f"http://127.0.0.1:{port}/echo", "x", "text/plain\r\nX-Evil: 1"), Err.EPARSE
    )


THREE_GETS = """
(argv 0 $url)
(local $body i32) (local $e i32)
(call $http.get (local.get $url)) (local.set $e) (local.set $body) (check $e)
(call $http.get (local.get $url)) (local.set $e) (local.set $body) (check $e)
(call $http.get (local.get $url)) (local.set $e) (local.set $body) (check $e)
(i32.const 0)
"""


def test_per_run_call_quota(port: int) -> None:
    cap = HttpCapability([f"127.0.0.1:{port}"], max_calls_per_run=2)
    refused(run(cap, THREE_GETS, f"http://127.0.0.1:{port}/hello"), Err.ENOMEM, "2 per run")
    assert get(cap, f"http://127.0.0.1:{port}/hello").status == 0  # a new run, a new count


def test_per_session_call_quota(port: int) -> None:
    cap = HttpCapability([f"127.0.0.1:{port}"], max_calls_per_session=1)
    assert get(cap, f"http://127.0.0.1:{port}/hello").status == 0
    refused(get(cap, f"http://127.0.0.1:{port}/hello"), Err.ENOMEM, "1 per session")


# ---- pure parts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entry,expected",
    [
        ("Example.COM.", ("example.com", None)),
        ("example.com:8443", ("example.com", 8443)),
        ("bücher.de", ("xn--bcher-kva.de", None)),
        ("[::1]:81", ("::1", 81)),
        ("0x7f.1:80", ("127.0.0.1", 80)),
    ],
)
def test_grants_are_normalised(entry: str, expected: tuple[str, int | None]) -> None:
    assert Grants.parse([entry]).entries == {expected}


@pytest.mark.parametrize(
    "entry", ["http://x.com", "x.com/path", "a@b.com", "x.com:99999", "x.com:abc", "", "a b"]
)
def test_bad_grants_are_configuration_errors(entry: str) -> None:
    with pytest.raises(CapabilityError):
        Grants.parse([entry])


@pytest.mark.parametrize(
    "host,expected",
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("API.Example.com.", "api.example.com"),
    ],
)
def test_normalise_host(host: str, expected: str) -> None:
    assert normalise_host(host) == expected


@pytest.mark.parametrize(
    "ip,public",
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("::7f00:1", False),
        ("2002:7f00:1::", False),
        ("2002:a00:1::", False),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),
    ],
)
def test_refusal_reason(ip: str, public: bool) -> None:
    import ipaddress

    assert (refusal_reason(ipaddress.ip_address(ip)) is None) is public


def test_check_url_accepts_idna_and_default_port() -> None:
    grants = Grants.parse(["bücher.de"])
    assert check_url(" https://BÜCHER.de:443/x \n", grants).raw_host == b"xn--bcher-kva.de"


def test_read_body_truncates_or_refuses() -> None:
    deadline = Deadline.after(10)
    assert read_body([b"abc", b"def"], "identity", 4, deadline, truncate=True) == b"abcd"
    with pytest.raises(GuestError) as info:
        read_body([gzip.compress(b"a" * 100)], "gzip", 10, deadline)
    assert info.value.code == Err.ENOMEM
    raw = zlib.compressobj(wbits=-15)
    assert (
        read_body([raw.compress(b"raw deflate") + raw.flush()], "deflate", 100, deadline)
        == b"raw deflate"
    )


def test_bomb_decoding_stops_near_the_cap() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(GuestError) as info:
            read_body([BOMB], "gzip", 1_000_000, Deadline.after(10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code == Err.ENOMEM
    assert peak < 4_000_000  # about the 1 MB cap, not the 10 MB the bomb expands to


def test_describe_is_short_and_says_enomem() -> None:
    text = describe(HttpCapability())
    assert "ENOMEM" in text and len(text.splitlines()) == 3
    assert all(len(f.doc.split()) <= 15 for f in HttpCapability().functions())
