"""Allow-list entries that would grant more than they look like are refused with the reason."""

from __future__ import annotations

import pytest

from capabilities.netguard import Grants, broad_entry_reason
from rt.errors import CapabilityError


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("localhost", "explicit port"),
        ("LOCALHOST.", "explicit port"),
        ("127.0.0.1", "explicit port"),
        ("127.1", "explicit port"),
        ("2130706433", "explicit port"),
        ("::1", "explicit port"),
        ("[::1]", "explicit port"),
        ("[::ffff:127.0.0.1]", "explicit port"),
        ("0.0.0.0", "unspecified address"),
        ("0.0.0.0:8080", "unspecified address"),
        ("::", "unspecified address"),
        ("[::]:80", "unspecified address"),
        ("10.0.0.1", "private"),
        ("10.0.0.1:8080", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("[fd00::1]:80", "private"),
        ("10.0.0.0/8", "CIDR"),
        ("[fd00::]/8", "CIDR"),
        ("*.example.com", "wildcards"),
        ("*", "wildcards"),
        ("api.*", "wildcards"),
        ("app.localhost:8080", "loopback name"),
    ],
)
def test_broad_entries_are_refused_with_the_reason(entry: str, reason: str) -> None:
    assert reason in (broad_entry_reason(entry) or "")
    with pytest.raises(CapabilityError) as info:
        Grants.from_user(["example.com", entry])
    assert f"allow-list entry {entry!r} refused: " in str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("entry", "loopback"),
    [
        ("example.com", False),
        ("example.com:8443", False),
        ("8.8.8.8", False),
        ("[2606:4700::1111]", False),
        ("localhost:8080", True),
        ("127.0.0.1:11434", True),
        ("[::1]:81", True),
        ("::1", None),  # refused: no port
    ],
)
def test_exact_hosts_and_loopback_with_a_port_are_granted(
    entry: str, loopback: bool | None
) -> None:
    if loopback is None:
        with pytest.raises(CapabilityError):
            Grants.from_user([entry])
        return
    grants = Grants.from_user([entry])
    assert len(grants.entries) == 1
    notes = grants.notes()
    assert bool(notes) is loopback
    if loopback:
        assert "is loopback" in notes[0]


def test_bare_ipv6_is_read_as_a_host() -> None:
    assert Grants.parse(["::1"]).entries == {("::1", None)}


def test_malformed_entries_keep_the_parse_error() -> None:
    assert broad_entry_reason("http://x.com") is None
    with pytest.raises(CapabilityError, match="expected HOST or HOST:PORT"):
        Grants.from_user(["http://x.com"])


def test_the_low_level_parse_keeps_accepting_what_connect_time_refuses() -> None:
    # HttpCapability(["127.0.0.1"]) still builds; the connect-time check refuses it (test_http)
    assert Grants.parse(["127.0.0.1"]).entries == {("127.0.0.1", None)}
