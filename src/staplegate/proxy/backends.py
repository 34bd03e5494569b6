"""A backend's servers, their up/down state, and round-robin choice among the healthy ones.

Health follows HAProxy's rule: a server goes DOWN after `fall` consecutive failed checks and
back UP after `rise` consecutive successes. Servers start UP (HAProxy's default
`init-state up`), so traffic flows before the first check completes. The state lives here,
pure; `proxy.health.HealthChecker` performs the checks and reports results.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class ServerState(enum.Enum):
    UP = "UP"
    DOWN = "DOWN"


class AdminState(enum.Enum):
    """What the operator asked for (`set server B/S state ...`); orthogonal to health."""

    READY = "ready"
    DRAIN = "drain"  # no new connections; existing ones finish
    MAINT = "maint"  # out of service


@dataclass(frozen=True)
class BackendServer:
    """One `server` line: address and check settings (`inter` in seconds)."""

    name: str
    host: str
    port: int
    check: bool = False
    inter_s: float = 2.0
    rise: int = 2
    fall: int = 3

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError(f"server {self.name}: rise and fall must be at least 1")
        if self.inter_s <= 0:
            raise ValueError(f"server {self.name}: inter must be positive")

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StateChange:
    """A server crossed the rise/fall threshold."""

    server: BackendServer
    state: ServerState
    checks_in_a_row: int


class _Health:
    __slots__ = ("admin", "failures", "state", "successes")

    def __init__(self) -> None:
        self.state = ServerState.UP
        self.admin = AdminState.READY
        self.successes = 0
        self.failures = 0

    @property
    def usable(self) -> bool:
        return self.state is ServerState.UP and self.admin is AdminState.READY


class BackendPool:
    """A backend's servers; `pick` is O(number of servers), lock-free, one event loop."""

    def __init__(self, name: str, servers: Sequence[BackendServer]) -> None:
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"backend {name}: duplicate server names")
        self.name = name
        self.servers = tuple(servers)
        self._health = {s.name: _Health() for s in self.servers}
        self._next = 0

    def state(self, server: BackendServer) -> ServerState:
        return self._health[server.name].state

    def admin_state(self, server: BackendServer) -> AdminState:
        return self._health[server.name].admin

    def up_servers(self) -> tuple[BackendServer, ...]:
        return tuple(s for s in self.servers if self._health[s.name].usable)

    def set_state(self, name: str, state: ServerState) -> None:
        """Adopt a health state decided elsewhere (the master runs the checks)."""
        self._health[name].state = state

    def set_admin(self, name: str, admin: AdminState) -> None:
        self._health[name].admin = admin

    def states(self) -> dict[str, tuple[ServerState, AdminState]]:
        return {name: (h.state, h.admin) for name, h in self._health.items()}

    def pick(self) -> BackendServer | None:
        """The next UP server in round-robin order, or None when all are down."""
        count = len(self.servers)
        for offset in range(count):
            server = self.servers[(self._next + offset) % count]
            if self._health[server.name].usable:
                self._next = (self._next + offset + 1) % count
                return server
        return None

    def report(self, server: BackendServer, ok: bool) -> StateChange | None:
        """Record one check result; returns the change when the server goes up or down."""
        health = self._health[server.name]
        if ok:
            health.failures = 0
            health.successes += 1
            if health.state is ServerState.DOWN and health.successes >= server.rise:
                health.state = ServerState.UP
                return StateChange(server, ServerState.UP, health.successes)
        else:
            health.successes = 0
            health.failures += 1
            if health.state is ServerState.UP and health.failures >= server.fall:
                health.state = ServerState.DOWN
                return StateChange(server, ServerState.DOWN, health.failures)
        return None
