"""Fault injection for the test OCSP responder: what can go wrong, as plain data.

A `FaultPlan` is an ordered tuple of `Fault`s; the first one that matches a request applies
(a fault with `serial` set matches only requests for that serial, one without matches all).
Plans come from JSON (`POST /_faults`, `--faults FILE`) or from Python (the pytest plugin).
The JSON shape is `{"faults": [{"kind": "http-500", "serial": "1A2B", "times": 1}, ...]}`;
a bare list is accepted too. Serials are hex strings (as index.txt writes them) or integers;
a `fixed-body` fault's `body` is base64.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

DEFAULT_DELAY_SECONDS: Final = 2.0
DEFAULT_HUGE_BYTES: Final = 8 * 1024 * 1024


class FaultKind(enum.Enum):
    """One way a responder can misbehave; the value is the JSON/CLI spelling."""

    DELAY = "delay"  # answer normally after `seconds`
    HANG = "hang"  # never answer (until the client gives up or the server stops)
    HTTP_500 = "http-500"
    HTTP_404 = "http-404"
    WRONG_CONTENT_TYPE = "wrong-content-type"  # a valid response labelled application/octet-stream
    EMPTY_BODY = "empty-body"  # 200, right Content-Type, no bytes
    GARBAGE_BODY = "garbage-body"  # 200, right Content-Type, not DER
    HUGE_BODY = "huge-body"  # 200, right Content-Type, `size` bytes
    TRY_LATER = "try-later"  # OCSPResponseStatus tryLater
    UNAUTHORIZED = "unauthorized"  # OCSPResponseStatus unauthorized
    INTERNAL_ERROR = "internal-error"  # OCSPResponseStatus internalError
    ROGUE_SIGNER = "rogue-signer"  # signed by a key no CA vouches for
    STALE = "stale"  # nextUpdate in the past
    FUTURE = "future"  # thisUpdate a day ahead
    WRONG_CERTID = "wrong-certid"  # answers for another certificate of the same CA
    CONNECTION_RESET = "reset"  # TCP RST instead of an answer
    FIXED_BODY = "fixed-body"  # 200, right Content-Type, the fault's `body` (base64 in JSON)
    MAX_AGE = "max-age"  # answer normally, with `Cache-Control: max-age=<seconds>` (GET and POST)

    @property
    def is_http_level(self) -> bool:
        """Faults the HTTP layer performs; the others change the OCSP response itself."""
        return self in _HTTP_LEVEL


_HTTP_LEVEL: Final = frozenset(
    {
        FaultKind.DELAY,
        FaultKind.HANG,
        FaultKind.HTTP_500,
        FaultKind.HTTP_404,
        FaultKind.WRONG_CONTENT_TYPE,
        FaultKind.EMPTY_BODY,
        FaultKind.GARBAGE_BODY,
        FaultKind.HUGE_BODY,
        FaultKind.CONNECTION_RESET,
        FaultKind.FIXED_BODY,
        FaultKind.MAX_AGE,
    }
)


class FaultPlanError(ValueError):
    """A fault description that cannot be used; the message names the entry and the fix."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault; `serial` None targets every request, `times` None applies it forever."""

    kind: FaultKind
    serial: int | None = None
    seconds: float = DEFAULT_DELAY_SECONDS
    size: int = DEFAULT_HUGE_BYTES
    times: int | None = None
    body: bytes = b""
    """What a `fixed-body` fault serves: e.g. a malformed response a test built."""

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise FaultPlanError(f"{self.kind.value}: seconds must be >= 0")
        if self.size < 0:
            raise FaultPlanError(f"{self.kind.value}: size must be >= 0")
        if self.times is not None and self.times < 1:
            raise FaultPlanError(f"{self.kind.value}: times must be >= 1 (or absent)")

    def matches(self, serial: int | None) -> bool:
        return self.serial is None or self.serial == serial

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value}
        if self.serial is not None:
            data["serial"] = f"{self.serial:X}"
        if self.kind in (FaultKind.DELAY, FaultKind.HANG, FaultKind.MAX_AGE):
            data["seconds"] = self.seconds
        if self.kind is FaultKind.HUGE_BODY:
            data["size"] = self.size
        if self.kind is FaultKind.FIXED_BODY:
            data["body"] = base64.b64encode(self.body).decode("ascii")
        if self.times is not None:
            data["times"] = self.times
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, position: int = 0) -> Fault:
        where = f"fault #{position + 1}"
        if not isinstance(data, Mapping):
            raise FaultPlanError(f'{where}: expected an object like {{"kind": "http-500"}}')
        unknown = set(data) - {"kind", "serial", "seconds", "size", "times", "body"}
        if unknown:
            raise FaultPlanError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            kind = FaultKind(data.get("kind"))
        except ValueError:
            names = ", ".join(k.value for k in FaultKind)
            raise FaultPlanError(
                f"{where}: unknown kind {data.get('kind')!r}; use {names}"
            ) from None
        try:
            return cls(
                kind=kind,
                serial=parse_serial(data["serial"]) if data.get("serial") is not None else None,
                seconds=float(data.get("seconds", DEFAULT_DELAY_SECONDS)),
                size=int(data.get("size", DEFAULT_HUGE_BYTES)),
                times=int(data["times"]) if data.get("times") is not None else None,
                body=base64.b64decode(data.get("body", ""), validate=True),
            )
        except (TypeError, ValueError) as error:
            raise FaultPlanError(f"{where}: {error}") from None


def parse_serial(value: object) -> int:
    """A serial from JSON: an integer, or a hex string as index.txt and openssl print it."""
    if isinstance(value, bool):
        raise FaultPlanError("serial must be a hex string or an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().removeprefix("0x").removeprefix("0X").replace(":", "")
        try:
            return int(text, 16)
        except ValueError:
            raise FaultPlanError(f"serial {value!r} is not hexadecimal") from None
    raise FaultPlanError("serial must be a hex string or an integer")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The active faults, in priority order."""

    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def to_json(self) -> dict[str, Any]:
        return {"faults": [fault.to_json() for fault in self.faults]}

    @classmethod
    def of(cls, faults: Iterable[Fault]) -> FaultPlan:
        return cls(tuple(faults))

    @classmethod
    def from_json(cls, data: object) -> FaultPlan:
        if isinstance(data, Mapping):
            unknown = set(data) - {"faults"}
            if unknown:
                raise FaultPlanError(f"unknown field(s) {', '.join(sorted(unknown))}; use faults")
            data = data.get("faults", [])
        if not isinstance(data, list):
            raise FaultPlanError('expected {"faults": [...]} or a list of faults')
        return cls(tuple(Fault.from_json(item, position=i) for i, item in enumerate(data)))

    @classmethod
    def parse(cls, text: str | bytes) -> FaultPlan:
        """Parse JSON text; an empty document means "no faults"."""
        if not text.strip():
            return cls()
        try:
            data = json.loads(text)
        except ValueError as error:
            raise FaultPlanError(f"not JSON: {error}") from None
        return cls.from_json(data)
