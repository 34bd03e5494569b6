"""Choose a bind's certificate for a ClientHello: an immutable SNI index (pure, no OpenSSL).

Rules (HAProxy's bind/crt-list behaviour, with the `!` semantics made explicit):

- A certificate is indexed under its crt-list SNI filters when the line has any, else under
  its DNS SANs and subject CNs. `*.example.com` covers exactly one extra label.
- `!name` in a line's filters excludes `name` (exact, case-insensitive) from that line's
  certificate, even when one of its wildcards would cover it; the lookup then goes on to the
  other certificates and finally the default. (`!*.x` is ignored, as in HAProxy.)
- Exact names win over wildcards. Within the winning tier, ECDSA is chosen when the client's
  signature_algorithms accept it and it offers a cipher suite an ECDSA key can serve (as
  HAProxy checks), else RSA, else any other key type; among equals, the first certificate in
  configuration order.
- No match: the bind's first certificate (the default), unless `strict-sni` is on, which
  refuses the handshake; without SNI, strict-sni refuses too (HAProxy does the same).
- Ours: a must-staple certificate (RFC 7633) without a staple right now is passed over for
  another certificate of the winning tier that the client accepts and that is not in the
  same state (clients refuse a must-staple certificate without a staple); when there is no
  such other certificate it is served anyway. `choose` asks `staple_of` (the worker's staple
  table lookup) only for must-staple candidates, so binds without one pay nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from staplegate.certs.model import KeyAlgorithm
from staplegate.tls.clienthello import ClientHello

T = TypeVar("T")


class SniMatch(enum.Enum):
    """How a certificate was chosen (for tests). A bind with one certificate and no
    strict-sni answers DEFAULT without looking at the name: there is nothing to choose."""

    EXACT = "exact"
    WILDCARD = "wildcard"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class SniEntry(Generic[T]):
    """One certificate of a bind, as the index sees it: its names and what to return."""

    value: T
    names: tuple[str, ...]  # certificate names (used when there are no filters)
    key_algorithm: KeyAlgorithm
    sni_filters: tuple[str, ...] = ()
    must_staple_key: bytes | None = None
    """For a must-staple certificate: its staple table key (CertId DER); else None."""


@dataclass(frozen=True, slots=True)
class SniChoice(Generic[T]):
    value: T
    match: SniMatch


def _normalise(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class _Candidate(Generic[T]):
    order: int
    entry: SniEntry[T]


class SniIndex(Generic[T]):
    """Immutable lookup from a server name to one of a bind's certificates."""

    __slots__ = (
        "_default",
        "_default_choice",
        "_entries",
        "_exact",
        "_excluded",
        "_only",
        "_wildcard",
        "strict_sni",
    )

    def __init__(self, entries: Sequence[SniEntry[T]], *, strict_sni: bool = False) -> None:
        if not entries:
            raise ValueError("a TLS bind needs at least one certificate")
        self.strict_sni = strict_sni
        self._entries = tuple(entries)
        self._default = self._entries[0]
        self._default_choice = SniChoice(self._default.value, SniMatch.DEFAULT)
        # One certificate and no strict-sni: every hello gets it, whatever its name.
        self._only = self._default_choice if len(self._entries) == 1 and not strict_sni else None
        exact: dict[str, list[_Candidate[T]]] = {}
        wildcard: dict[str, list[_Candidate[T]]] = {}
        excluded: set[tuple[int, str]] = set()
        for order, entry in enumerate(self._entries):
            for raw in entry.sni_filters or entry.names:
                name = _normalise(raw)
                negative = name.startswith("!")
                if negative:
                    name = name[1:]
                    if not name.startswith("*"):
                        excluded.add((order, name))
                    continue
                if not name:
                    continue
                if name.startswith("*."):
                    wildcard.setdefault(name[2:], []).append(_Candidate(order, entry))
                else:
                    exact.setdefault(name, []).append(_Candidate(order, entry))
        self._exact = {k: tuple(v) for k, v in exact.items()}
        self._wildcard = {k: tuple(v) for k, v in wildcard.items()}
        self._excluded = frozenset(excluded)

    @property
    def default(self) -> T:
        return self._default.value

    @property
    def values(self) -> tuple[T, ...]:
        return tuple(entry.value for entry in self._entries)

    @property
    def only(self) -> SniChoice[T] | None:
        """The choice for every hello when it cannot depend on one (one certificate, no
        strict-sni): the data plane then need not parse the hello at all."""
        return self._only

    def choose(
        self, hello: ClientHello, staple_of: Callable[[bytes], bytes] | None = None
    ) -> SniChoice[T] | None:
        """The certificate for this hello, or None when strict-sni refuses the handshake.

        `staple_of(key)` returns a certificate's current staple (b"" for none); given, it
        lets an unstapled must-staple certificate be passed over (module docstring).
        """
        if self._only is not None:
            return self._only
        server_name = hello.server_name
        name = _normalise(server_name) if server_name else None
        if name:
            candidates = self._exact.get(name)
            if candidates:
                picked = self._pick(candidates, name, hello, staple_of)
                if picked is not None:
                    return SniChoice(picked, SniMatch.EXACT)
            _, dot, parent = name.partition(".")
            if dot and parent:
                candidates = self._wildcard.get(parent)
                if candidates:
                    picked = self._pick(candidates, name, hello, staple_of)
                    if picked is not None:
                        return SniChoice(picked, SniMatch.WILDCARD)
        if self.strict_sni:
            return None
        return self._default_choice

    def _pick(
        self,
        candidates: tuple[_Candidate[T], ...],
        name: str,
        hello: ClientHello,
        staple_of: Callable[[bytes], bytes] | None,
    ) -> T | None:
        if len(candidates) == 1 and not self._excluded:  # one certificate: nothing to weigh
            return candidates[0].entry.value
        allowed = [c for c in candidates if (c.order, name) not in self._excluded]
        if not allowed:
            return None
        picked = _preferred(allowed, hello)
        key = picked.must_staple_key
        if key is None or staple_of is None or staple_of(key):
            return picked.value
        # an unstapled must-staple certificate: another one the client accepts, if any
        usable = [
            c
            for c in allowed
            if c.entry.must_staple_key is None or staple_of(c.entry.must_staple_key)
        ]
        if usable:
            other = _preferred(usable, hello)
            if other.key_algorithm is picked.key_algorithm or _accepts(hello, other):
                return other.value
        return picked.value


def _accepts(hello: ClientHello, entry: SniEntry[T]) -> bool:
    if entry.key_algorithm is KeyAlgorithm.ECDSA:
        return hello.accepts_ecdsa()
    if entry.key_algorithm is KeyAlgorithm.RSA:
        return hello.accepts_rsa()
    return False


def _preferred(allowed: Sequence[_Candidate[T]], hello: ClientHello) -> SniEntry[T]:
    """ECDSA when the client takes it, else RSA, else the first (configuration order)."""
    if hello.accepts_ecdsa():
        for candidate in allowed:
            if candidate.entry.key_algorithm is KeyAlgorithm.ECDSA:
                return candidate.entry
    if hello.accepts_rsa():
        for candidate in allowed:
            if candidate.entry.key_algorithm is KeyAlgorithm.RSA:
                return candidate.entry
    return allowed[0].entry
