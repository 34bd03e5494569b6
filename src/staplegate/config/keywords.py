"""What staplegate knows about HAProxy's keywords, derived from the parser's registry.

Each section module of `config/parser/` registers its keywords (supported with a handler,
ignored with a reason, refused); this module only reads those tables, so a keyword is added
in one place. These are the lists the documentation and the reviewed-list test read: per
table, the supported keywords, the ignored ones with their reasons (split, for `global`,
into those read and stored first and those skipped), and the refused ones.
"""

from __future__ import annotations

from staplegate.config.crtlist import CRT_LIST_OPTIONS
from staplegate.config.parser.bind import BIND_OPTIONS
from staplegate.config.parser.crt_store import CRT_STORE
from staplegate.config.parser.dispatch import SECTIONS
from staplegate.config.parser.global_section import GLOBAL
from staplegate.config.parser.proxies import PROXY
from staplegate.config.parser.registry import KeywordClass
from staplegate.config.parser.rules import HTTP_REQUEST_ACTIONS
from staplegate.config.parser.server import SERVER_OPTIONS
from staplegate.config.parser.userlist import USERLIST

IGNORED_SECTIONS = SECTIONS.of_kind(KeywordClass.IGNORED)
REFUSED_SECTIONS = SECTIONS.of_kind(KeywordClass.REFUSED)

GLOBAL_SUPPORTED = GLOBAL.parsed()
GLOBAL_IGNORED = GLOBAL.reasons(parsed=False)
# read, stored where useful, then warned about: they change nothing staplegate does
GLOBAL_PARSED_BUT_IGNORED = GLOBAL.reasons(parsed=True)
GLOBAL_REFUSED = GLOBAL.of_kind(KeywordClass.REFUSED)

PROXY_SUPPORTED = PROXY.of_kind(KeywordClass.SUPPORTED)
PROXY_IGNORED = PROXY.reasons()
PROXY_REFUSED = PROXY.of_kind(KeywordClass.REFUSED)
HTTP_REQUEST_SUPPORTED = HTTP_REQUEST_ACTIONS.of_kind(KeywordClass.SUPPORTED)

CRT_STORE_SUPPORTED = CRT_STORE.of_kind(KeywordClass.SUPPORTED)
USERLIST_SUPPORTED = USERLIST.of_kind(KeywordClass.SUPPORTED)

BIND_SUPPORTED = BIND_OPTIONS.of_kind(KeywordClass.SUPPORTED)
BIND_IGNORED = BIND_OPTIONS.reasons()
BIND_REFUSED = BIND_OPTIONS.of_kind(KeywordClass.REFUSED)

SERVER_SUPPORTED = SERVER_OPTIONS.of_kind(KeywordClass.SUPPORTED)
SERVER_IGNORED = SERVER_OPTIONS.reasons()
SERVER_REFUSED = SERVER_OPTIONS.of_kind(KeywordClass.REFUSED)

CRTLIST_SUPPORTED = CRT_LIST_OPTIONS.of_kind(KeywordClass.SUPPORTED)
CRTLIST_REFUSED = CRT_LIST_OPTIONS.of_kind(KeywordClass.REFUSED)
