"""`crt-store` sections: where certificates are declared once and named (`load` lines).

`crt-base`/`key-base` apply to the `load` lines after them; a `load` names its files and
its `ocsp-update`, and the entry is referred to from `bind ... crt @store/name`.
"""

from __future__ import annotations

from staplegate.config.crtlist import (
    effective_base,
    join_base,
    ocsp_update_error,
    parse_ocsp_update,
    responder_url_error,
)
from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import CrtStoreLoad
from staplegate.config.parser.registry import KeywordTable, refused_message, suggest, supported
from staplegate.config.parser.state import Handler, ParserState, StoreBuilder


def open_crt_store(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`crt-store [<name>]`: a new store, whose name must be unique."""
    head = args[0]
    name = args[1] if len(args) > 1 else None
    if name is not None and not parser.valid_name(name, head, where):
        name = None
    if name is not None and any(s.name == name for s in parser.stores):
        first = next(s for s in parser.stores if s.name == name)
        parser.error(
            where,
            head,
            f"crt-store '{name}' has the same name as another crt-store declared at "
            f"{first.location}.",
            Reason.DUPLICATE,
        )
    parser.store = StoreBuilder(where, name)


def _base_dir(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    store = parser.store
    assert store is not None
    head = args[0]
    if len(args) != 2:
        parser.error(
            where,
            head,
            f"'{head}' expects a directory path as an argument.",
            Reason.MISSING_ARGUMENT,
        )
        return
    if store.loads:
        parser.error(
            where,
            head,
            f"'{head}' must be set before the first 'load' line of the crt-store "
            "section (it only applies to the lines after it); move it up.",
            Reason.SYNTAX,
        )
        return
    if head == "crt-base":
        store.crt_base = args[1]
    else:
        store.key_base = args[1]


def _load(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    store = parser.store
    assert store is not None
    values: dict[str, str] = {}
    i = 1
    allowed = ("crt", "key", "ocsp", "issuer", "sctl", "ocsp-update", "ocsp-responder", "alias")
    while i < len(args):
        opt = args[i]
        if opt not in allowed:
            hint = suggest(opt, set(allowed))
            suffix = f" Did you mean '{hint}' maybe ?" if hint else ""
            if opt in ("acme", "domains"):
                parser.error(where, "load", refused_message(f"load {opt}"), Reason.UNSUPPORTED)
            else:
                parser.error(
                    where,
                    "load",
                    f"'load' : unknown keyword '{opt}'.{suffix}",
                    Reason.UNKNOWN_KEYWORD,
                )
            return
        if i + 1 >= len(args):
            parser.error(
                where, "load", f"'load' : '{opt}' expects an argument.", Reason.MISSING_ARGUMENT
            )
            return
        values[opt] = args[i + 1]
        i += 2
    if "crt" not in values:
        parser.error(where, "load", "'load' : 'crt' is mandatory.", Reason.MISSING_ARGUMENT)
        return
    ocsp_update: bool | None = None
    if "ocsp-update" in values:
        ocsp_update = parse_ocsp_update(values["ocsp-update"])
        if ocsp_update is None:
            parser.error(where, "ocsp-update", ocsp_update_error(values["ocsp-update"]))
            return
    responder = values.get("ocsp-responder")
    if responder is not None:
        problem = responder_url_error("ocsp-responder", responder)
        if problem is not None:
            parser.error(where, "ocsp-responder", problem, Reason.INVALID_VALUE)
            return
    default_path = parser.global_.default_path
    crt_base = store.crt_base if store.crt_base is not None else parser.global_.crt_base
    key_base = store.key_base if store.key_base is not None else parser.global_.key_base
    crt_base = effective_base(default_path, crt_base)
    key_base = effective_base(default_path, key_base)
    load = CrtStoreLoad(
        location=where,
        store=store.name,
        crt=values["crt"],
        crt_path=join_base(crt_base, values["crt"]),
        key_path=join_base(key_base, values["key"]) if "key" in values else None,
        ocsp_path=join_base(crt_base, values["ocsp"]) if "ocsp" in values else None,
        issuer_path=join_base(crt_base, values["issuer"]) if "issuer" in values else None,
        sctl_path=join_base(crt_base, values["sctl"]) if "sctl" in values else None,
        ocsp_update=ocsp_update,
        alias=values.get("alias"),
        ocsp_responder=responder,
    )
    # by name, not a scan of every earlier load: 50,000 loads took hours (quadratic)
    first = parser.store_entries.setdefault(load.name, load)
    if first is not load:
        parser.error(
            where,
            "load",
            f"Cannot create a new certificate store entry '{load.name}', this name is "
            f"already used at {first.location}.",
            Reason.DUPLICATE,
        )
        return
    store.loads.append(load)


# every keyword a crt-store section knows
CRT_STORE: KeywordTable[Handler] = KeywordTable(
    [
        supported("crt-base", _base_dir),
        supported("key-base", _base_dir),
        supported("load", _load),
    ]
)
