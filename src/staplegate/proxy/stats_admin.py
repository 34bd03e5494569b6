"""`stats admin`: the stats page's server actions, HAProxy's form and answers, pure.

Theory of operation. A request that meets the `stats admin` condition gets the page's admin
variant (a checkbox per server, an action list and Apply per backend: HAProxy's form). Its
POST, a urlencoded body of at most `MAX_FORM_BYTES` read under the frontend's timeouts by
`http_stream.HttpStream`, is parsed here (`parse_form`), then sent by the worker to the
master (`AdminChannel`, over the worker's report pipe), which applies it through the runtime
API's own `set server <b>/<s> state …` (same checks, same effect, every worker told) and
answers with HAProxy's status code. The worker then answers `303 See Other` to
`<uri>;st=<code>` (`redirect`), and the page shows the code's banner (`banner`). A request
that does not meet the condition gets the read-only page, and its POST `;st=DENY`.

The master re-renders the pages before it answers, so the page the 303 leads to shows the
new state. A master that does not answer within `REPLY_TIMEOUT_S` gives `UNKN`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from staplegate.proxy.http_message import LocalResponse, reason_phrase

#: the largest form body read; a longer one is answered `EXCD` (HAProxy: the buffer is full)
MAX_FORM_BYTES = 64 * 1024
#: how long a worker waits for the master's answer to an action
REPLY_TIMEOUT_S = 5.0

#: where the rendered page takes the status banner of `;st=<code>`
BANNER_MARK = b"<!--stats-admin-status-->"

#: the page's actions staplegate applies: HAProxy's value -> `set server … state` value
ACTIONS: Mapping[str, str] = {"ready": "ready", "drain": "drain", "maint": "maint"}
#: the form's labels for them (HAProxy's)
ACTION_LABELS: Mapping[str, str] = {
    "ready": "Set state to READY",
    "drain": "Set state to DRAIN",
    "maint": "Set state to MAINT",
}

# HAProxy's status codes (`stat_status_codes`)
DONE = "DONE"  # every server was changed
PART = "PART"  # some were (others unknown)
NONE = "NONE"  # nothing to do
ERRP = "ERRP"  # invalid parameters: unknown action, backend or servers
EXCD = "EXCD"  # the body was too large
DENY = "DENY"  # the request does not meet `stats admin`, or the backend is out of scope
UNKN = "UNKN"  # no answer from the master

#: `;st=<code>`: the banner's class (colour) and text, HAProxy's
_BANNERS: Mapping[str, tuple[str, str]] = {
    DONE: ("active_up", "Action processed successfully."),
    NONE: ("active_going_down", "Nothing has changed."),
    PART: (
        "active_going_down",
        "Action partially processed.<br>"
        "Some server names are probably unknown or ambiguous (duplicated names in the backend).",
    ),
    ERRP: (
        "active_down",
        "Action not processed because of invalid parameters.<ul>"
        "<li>The action is maybe unknown.</li>"
        "<li>Invalid key parameter (empty or too long).</li>"
        "<li>The backend name is probably unknown or ambiguous (duplicated names).</li>"
        "<li>Some server names are probably unknown or ambiguous "
        "(duplicated names in the backend).</li></ul>",
    ),
    EXCD: (
        "active_down",
        "<b>Action not processed : the buffer couldn't store all the data.<br>"
        "You should retry with less servers at a time.</b>",
    ),
    DENY: ("active_down", "<b>Action denied.</b>"),
}
_UNEXPECTED = ("active_no_check", "Unexpected result.")

#: HAProxy's longest key=value pair (LINESIZE); a longer one is an invalid parameter
_MAX_PARAMETER = 2048


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """One POSTed action: on which servers of which backend, from which stats frontend."""

    frontend: str
    backend: str
    action: str  # a key of ACTIONS
    servers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AdminMessage:
    """A worker→master message: an action to apply, and the number its answer carries."""

    request_id: int
    request: AdminRequest


def parse_form(frontend: str, body: bytes) -> AdminRequest | str:
    """The action a form body asks for, or the status code that answers it at once.

    HAProxy's reading: the last `b` and `action` win, every `s` names a server; an unknown
    action or an over-long or undecodable parameter is `ERRP`; no backend, action or server
    is `NONE`. HAProxy's other actions (health and agent checks, "Kill Sessions") are not
    offered by staplegate's page and answer `ERRP` (docs/reference/stats-page.md).
    """
    backend: str | None = None
    action: str | None = None
    servers: list[str] = []
    for pair in body.split(b"&") if body else ():
        if len(pair) >= _MAX_PARAMETER:
            return ERRP
        raw_key, _, raw_value = pair.partition(b"=")
        try:
            key = unquote_to_bytes(raw_key.replace(b"+", b" ")).decode("utf-8")
            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return ERRP
        if key == "b":
            backend = value
        elif key == "action":
            action = value
        elif key == "s":
            servers.append(value)
    if action is not None and action not in ACTIONS:
        return ERRP
    if not backend or not action or not servers:
        return NONE
    return AdminRequest(frontend, backend, action, tuple(servers))


def plan_commands(
    request: AdminRequest,
    servers: Sequence[tuple[str, str]],
    scope: Sequence[str] = (),
) -> tuple[list[list[str]], int] | str:
    """The runtime API commands that apply `request`, and how many of its servers are
    unknown; or the status code that answers it at once (unknown backend: `ERRP`; outside
    `stats scope`: `DENY`, as HAProxy, so the page discloses no other name)."""
    if scope and request.backend not in scope:
        return DENY
    names = {server for backend, server in servers if backend == request.backend}
    if not names:
        return ERRP
    state = ACTIONS[request.action]
    commands = [
        ["set", "server", f"{request.backend}/{server}", "state", state]
        for server in request.servers
        if server in names
    ]
    return commands, len(request.servers) - len(commands)


def outcome(altered: int, total: int) -> str:
    """HAProxy's code for `altered` of `total` servers changed."""
    if total == 0:
        return NONE
    if altered == 0:
        return ERRP
    return DONE if altered == total else PART


def banner(target: bytes, uri: bytes) -> bytes:
    """The status banner for a `;st=<code>` in the request's target (b"" without one)."""
    rest = target[len(uri) :]
    start = rest.find(b";st=")
    if start < 0:
        return b""
    code = rest[start + 4 :].split(b";", 1)[0].split(b"?", 1)[0].decode("latin-1")
    css, text = _BANNERS.get(code, _UNEXPECTED)
    close = uri.decode("latin-1").replace("&", "&amp;").replace('"', "&quot;")
    return (
        f'<p><div class="banner {css}"><a class=lfsb href="{close}" '
        f'title="Remove this message">[X]</a> {text}</div></p>\n'
    ).encode()


def redirect(uri: bytes, code: str) -> LocalResponse:
    """HAProxy's answer to a POST on the page: 303 to the page with the status."""
    location = uri.decode("latin-1") + ";st=" + code
    headers = (
        ("cache-control", "no-cache"),
        ("content-type", "text/plain"),
        ("location", location),
    )
    return LocalResponse(303, reason_phrase(303), headers, b"", close=False)


class AdminChannel:
    """A worker's actions on their way to the master, and the answers they wait for.

    `send` writes one `AdminMessage` to the master (the worker wires it to its report
    pipe); `answered` takes the master's answer (`process.ipc.read_messages`)."""

    def __init__(self, send: Callable[[AdminMessage], None] | None = None) -> None:
        self.send = send
        self._pending: dict[int, asyncio.Future[str]] = {}
        self._numbers = itertools.count(1)

    async def submit(self, request: AdminRequest, *, timeout: float = REPLY_TIMEOUT_S) -> str:
        """Apply `request` in the master; its status code (`UNKN` without an answer)."""
        if self.send is None:
            return UNKN
        number = next(self._numbers)
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[number] = answer
        try:
            self.send(AdminMessage(number, request))
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            return UNKN
        finally:
            self._pending.pop(number, None)

    def answered(self, request_id: int, code: str) -> None:
        answer = self._pending.get(request_id)
        if answer is not None and not answer.done():
            answer.set_result(code)
