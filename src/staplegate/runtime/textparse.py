"""Read the runtime API's text answers back into data, for `staplegate ctl --json` (pure).

The server speaks only HAProxy's text, so scripts written for HAProxy keep working; the
client turns the `show` answers into JSON-ready values. Each parser takes the answer body
(without the end-of-answer newline) and returns lists and dicts of strings; an answer that is
an error message (no recognisable layout) comes back as `{"answer": text}`.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

JsonValue = Any


def parse_answer(command: str, text: str) -> JsonValue:
    """Structured form of the answer to `command` (one command line, without payload)."""
    words = command.split()
    key = " ".join(words[:3])
    if words[:2] == ["show", "info"]:
        return _colon_pairs(text)
    if words[:2] == ["show", "stat"]:
        return _stat(text)
    if words[:3] == ["show", "servers", "state"]:
        return _servers_state(text)
    if key in ("show ssl ocsp-updates", "show ssl crl-watch"):
        return _pipes(text)
    if key == "show ssl ocsp-response":
        return _ocsp_entries(text) if len(words) == 3 else {"answer": text}
    if key == "show ssl cert":
        return _cert_list(text) if len(words) == 3 else _colon_pairs(text, repeat=True)
    if key == "show ssl crt-list":
        return _crt_list(text)
    if key == "update ssl ocsp-response":
        return _update_line(text)
    if key == "update ssl crl":
        return _crl_update(text)
    if words[:1] == ["reload"] or words[:2] == ["show", "reload"]:
        return _reload(text)
    return {"answer": text}


#: `update ssl ocsp-response`'s answer when an attempt completed: its `<OCSP-UPDATE>` line
_UPDATE_LINE = re.compile(
    r'<OCSP-UPDATE> (?P<path>.+) (?P<status>\d+) "(?P<text>.*)" (?P<failures>\d+) '
    r"(?P<successes>\d+)"
)


def _update_line(text: str) -> JsonValue:
    match = _UPDATE_LINE.fullmatch(text.strip())
    if match is None:  # still running, cannot fetch, unknown certificate: say it as it came
        return {"answer": text}
    return {
        "path": match["path"],
        "status": int(match["status"]),
        "status_text": match["text"],
        "failures": int(match["failures"]),
        "successes": int(match["successes"]),
    }


#: `update ssl crl`'s answer: the CRL's URL, the last <CRL-UPDATE> detail and its counters
_CRL_UPDATE = re.compile(
    r"(?P<url>\S+): (?P<detail>.*) \((?P<successes>\d+) successes, (?P<failures>\d+) failures\)"
)


def _crl_update(text: str) -> JsonValue:
    match = _CRL_UPDATE.fullmatch(text.strip())
    if match is None:
        return {"answer": text}
    return {
        "url": match["url"],
        "result": match["detail"],
        "successes": int(match["successes"]),
        "failures": int(match["failures"]),
    }


def _reload(text: str) -> JsonValue:
    lines = text.splitlines()
    if len(lines) < 3 or not lines[0].startswith("Success=") or lines[1] != "--":
        return {"answer": text}
    return {"success": lines[0] == "Success=1", "message": lines[2], "lines": lines[3:]}


def _colon_pairs(text: str, *, repeat: bool = False) -> JsonValue:
    values: dict[str, Any] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if not sep:
            name, sep, value = line.partition(":")
            if not sep:
                return {"answer": text}
        value = value.strip()
        if repeat and name in values:
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[name] = value
    return values


def _stat(text: str) -> JsonValue:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {"answer": text}
    header = lines[0][2:].rstrip(",").split(",")
    rows = []
    for record in csv.reader(io.StringIO("\n".join(lines[1:]))):
        if not record:
            continue
        rows.append(
            {name: value for name, value in zip(header, record, strict=False) if name != "-"}
        )
    return rows


def _servers_state(text: str) -> JsonValue:
    lines = text.splitlines()
    if len(lines) < 2 or not lines[1].startswith("# "):
        return {"answer": text}
    header = lines[1][2:].split()
    return [dict(zip(header, line.split(), strict=False)) for line in lines[2:] if line]


def _pipes(text: str) -> JsonValue:
    lines = text.splitlines()
    if not lines or " | " not in lines[0]:
        return {"answer": text}
    header = lines[0].split(" | ")
    return [
        dict(zip(header, line.split(" | ", len(header) - 1), strict=False)) for line in lines[1:]
    ]


def _ocsp_entries(text: str) -> JsonValue:
    lines = text.splitlines()
    if not lines or lines[0] != "# Certificate IDs":
        return {"answer": text}
    entries: list[dict[str, str]] = []
    for line in lines[1:]:
        name, _, value = line.strip().partition(": ")
        name = name.strip().rstrip(" :")
        if line.startswith("Certificate ID key"):
            entries.append({"Certificate ID key": line.partition(" : ")[2]})
        elif line.startswith("Certificate path") and entries:
            entries[-1]["Certificate path"] = line.partition(" : ")[2]
        elif entries and value:
            entries[-1][name] = value
    return entries


def _cert_list(text: str) -> JsonValue:
    result: dict[str, list[str]] = {"transaction": [], "filename": []}
    section: list[str] | None = None
    for line in text.splitlines():
        if line == "# transaction":
            section = result["transaction"]
        elif line == "# filename":
            section = result["filename"]
        elif section is not None:
            section.append(line)
        else:
            return {"answer": text}
    return result


def _crt_list(text: str) -> JsonValue:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return lines
    entries = []
    for line in lines[1:]:
        head, _, rest = line.partition(" ")
        options = ""
        if rest.startswith("["):
            options, _, rest = rest[1:].partition("]")
            rest = rest.strip()
        tail = head.rpartition(":")[2]
        # ASCII digits only: `"²".isdigit()` is true but `int("²")` raises
        store, _, number = head.rpartition(":") if _ascii_digits(tail) else (head, "", "")
        entries.append(
            {
                "store": store,
                "line": int(number) if number else None,
                "options": options,
                "sni_filters": rest.split(),
            }
        )
    return {"crt-list": lines[0][2:], "entries": entries}


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
