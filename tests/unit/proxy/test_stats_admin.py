"""`stats admin`'s pure parts: the form, the commands it becomes, HAProxy's codes and banners,
and the channel a worker's actions wait on."""

from __future__ import annotations

import asyncio

from staplegate.proxy.stats_admin import (
    DENY,
    DONE,
    ERRP,
    NONE,
    PART,
    UNKN,
    AdminChannel,
    AdminMessage,
    AdminRequest,
    banner,
    outcome,
    parse_form,
    plan_commands,
    redirect,
)

SERVERS = [("web", "a"), ("web", "b"), ("api", "x")]


def test_the_form_haproxys_page_posts() -> None:
    """Servers (repeated `s`), the action and the backend, urlencoded (HAProxy's order)."""
    parsed = parse_form("stats", b"s=a&s=b%20c&action=maint&b=web")
    assert parsed == AdminRequest("stats", "web", "maint", ("a", "b c"))
    # the last `b` and `action` win (HAProxy reads the body from its end)
    again = parse_form("stats", b"action=ready&b=api&s=x&action=drain&b=web")
    assert again == AdminRequest("stats", "web", "drain", ("x",))
    assert parse_form("stats", b"s=a+b&action=ready&b=web") == AdminRequest(
        "stats", "web", "ready", ("a b",)
    )


def test_bad_forms_answer_at_once() -> None:
    assert parse_form("stats", b"s=a&action=explode&b=web") == ERRP  # unknown action
    assert parse_form("stats", b"s=a&action=&b=web") == ERRP  # the list's empty choice
    # HAProxy's other actions are not offered by staplegate's page: not processed
    assert parse_form("stats", b"s=a&action=hdown&b=web") == ERRP
    assert parse_form("stats", b"s=a&action=shutdown&b=web") == ERRP
    assert parse_form("stats", b"s=%ff%fe&action=maint&b=web") == ERRP  # not UTF-8
    assert parse_form("stats", b"s=" + b"a" * 3000 + b"&action=maint&b=web") == ERRP
    # nothing to do: no server ticked, no backend, no action, an empty body
    assert parse_form("stats", b"action=maint&b=web") == NONE
    assert parse_form("stats", b"s=a&action=maint") == NONE
    assert parse_form("stats", b"s=a&b=web") == NONE
    assert parse_form("stats", b"") == NONE
    assert parse_form("stats", b"&&&=&") == NONE


def test_commands_are_the_runtime_apis_set_server_state() -> None:
    request = AdminRequest("stats", "web", "maint", ("a", "b"))
    assert plan_commands(request, SERVERS) == (
        [
            ["set", "server", "web/a", "state", "maint"],
            ["set", "server", "web/b", "state", "maint"],
        ],
        0,
    )
    partly = AdminRequest("stats", "web", "ready", ("a", "zz", "x"))  # x is api's
    assert plan_commands(partly, SERVERS) == ([["set", "server", "web/a", "state", "ready"]], 2)
    assert plan_commands(AdminRequest("stats", "nope", "ready", ("a",)), SERVERS) == ERRP
    # `stats scope`: a backend outside it is denied, whether it exists or not (HAProxy)
    assert plan_commands(request, SERVERS, scope=("api",)) == DENY
    assert plan_commands(AdminRequest("stats", "nope", "ready", ("a",)), SERVERS, ("api",)) == DENY
    assert plan_commands(request, SERVERS, scope=("web",)) != DENY


def test_outcome_is_haproxys_arithmetic() -> None:
    assert outcome(0, 0) == NONE
    assert outcome(0, 2) == ERRP
    assert outcome(2, 2) == DONE
    assert outcome(1, 2) == PART


def test_banners_and_the_redirect() -> None:
    done = banner(b"/stats;st=DONE", b"/stats")
    assert b"Action processed successfully." in done
    assert b"active_up" in done
    assert b'href="/stats"' in done
    assert b"Action denied." in banner(b"/stats;st=DENY;norefresh", b"/stats")
    assert b"invalid parameters" in banner(b"/stats;st=ERRP", b"/stats")
    assert b"partially processed" in banner(b"/stats;st=PART", b"/stats")
    assert b"Nothing has changed." in banner(b"/stats;st=NONE", b"/stats")
    assert b"couldn't store all the data" in banner(b"/stats;st=EXCD", b"/stats")
    # an unknown code is "Unexpected result", and nothing of it is echoed
    odd = banner(b"/stats;st=<script>", b"/stats")
    assert b"Unexpected result." in odd
    assert b"<script>" not in odd
    assert banner(b"/stats", b"/stats") == b""
    answer = redirect(b"/stats", DONE)
    assert answer.status == 303
    assert ("location", "/stats;st=DONE") in answer.headers
    assert answer.body == b""


def test_the_channel_waits_for_the_masters_answer() -> None:
    sent: list[AdminMessage] = []
    channel = AdminChannel(sent.append)
    request = AdminRequest("stats", "web", "maint", ("a",))

    async def scenario() -> tuple[str, str, str]:
        task = asyncio.create_task(channel.submit(request, timeout=5))
        await asyncio.sleep(0)
        assert len(sent) == 1
        channel.answered(sent[0].request_id + 100, ERRP)  # someone else's number: ignored
        channel.answered(sent[0].request_id, DONE)
        first = await task
        # no answer in time: UNKN, and a late answer is dropped
        late = await channel.submit(request, timeout=0)
        channel.answered(sent[1].request_id, DONE)
        unwired = await AdminChannel().submit(request)  # a worker without a report pipe
        return first, late, unwired

    assert asyncio.run(scenario()) == (DONE, UNKN, UNKN)
    assert sent[0].request == request
    assert sent[0].request_id != sent[1].request_id
