"""Per-run limits (fuel, memory, wall clock, sizes): plain data, importable without wasmtime."""

from __future__ import annotations

from dataclasses import dataclass

from rt.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    """Per-run limits; every one is configurable and documented in the README."""

    fuel: int = 10_000_000
    memory_bytes: int = 16 * 1024 * 1024
    timeout_s: float = 10.0
    max_source_bytes: int = 256 * 1024
    max_result_bytes: int = 64 * 1024
    max_debug_lines: int = 200
    table_elements: int = 10_000

    def validated(self) -> Limits:
        if self.fuel <= 0:
            raise ConfigError(f"fuel must be positive, got {self.fuel}")
        if not 65536 <= self.memory_bytes <= 4 * 1024**3:
            raise ConfigError(
                f"memory must be between 65536 and 4294967296 bytes, got {self.memory_bytes}"
            )
        if not 0 < self.timeout_s <= 3600:
            raise ConfigError(
                f"timeout must be more than 0 and at most 3600 seconds, got {self.timeout_s:g}"
            )
        if self.max_source_bytes <= 0 or self.max_result_bytes <= 0:
            raise ConfigError("source and result size limits must be positive")
        return self
