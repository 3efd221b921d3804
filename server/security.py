"""The bearer token and the bind rule (SECURITY.md rule 19).

The token is ``WATT_SERVE_TOKEN`` when set (an explicit token), else the contents of
``$WATT_HOME/serve.token``, created with mode 0600 at first start (and then shown once).
It is compared in constant time and never logged or echoed. A non-loopback bind needs an
explicit token: a token file a person never saw is no reason to open a port to a network.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from rt.errors import ConfigError

TOKEN_ENV = "WATT_SERVE_TOKEN"
TOKEN_FILE = "serve.token"
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Token:
    value: str
    explicit: bool  # from WATT_SERVE_TOKEN
    path: Path | None = None  # the token file, when it came from one
    created: bool = False  # the file was written now: show the token this once

    def __repr__(self) -> str:
        return f"Token(explicit={self.explicit}, path={self.path}, created={self.created})"


def load_token(home: Path, environ: dict[str, str] | None = None) -> Token:
    env = os.environ if environ is None else environ
    given = env.get(TOKEN_ENV, "").strip()
    if given:
        if len(given) < MIN_TOKEN_CHARS:
            raise ConfigError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters")
        return Token(given, explicit=True)
    path = home / TOKEN_FILE
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return Token(_read_token_file(path), explicit=False, path=path)
    except OSError as exc:
        raise ConfigError(f"cannot create the token file {path}: {exc.strerror}") from exc
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return Token(value, explicit=False, path=path, created=True)


def _read_token_file(path: Path) -> str:
    try:
        mode = path.lstat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"the token file {path} is not a regular file")
        if mode & 0o077:
            raise ConfigError(
                f"the token file {path} is readable by others (mode {mode & 0o777:o}); "
                f"chmod 600 it or remove it to get a new token"
            )
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc}") from exc
    if len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the token file {path} holds no usable token; remove it")
    return value


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: Token) -> None:
    """Refuse a non-loopback address unless the token was given explicitly."""
    if not is_loopback(host) and not token.explicit:
        raise ConfigError(
            f"refusing to listen on {host}, which is not a loopback address, without an "
            f"explicit token: set {TOKEN_ENV} (at least {MIN_TOKEN_CHARS} characters)"
        )


def bearer_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer TOKEN``, compared in constant time."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))
