"""The HAProxy-syntax configuration parser: a core plus one module per section family.

`dispatch` drives the files; `registry` is the keyword registry each section module fills
(`global_section`, `proxies`, `bind`, `server`, `rules`, `crt_store`); `state` holds what every
handler shares. `config/keywords.py` derives the keyword lists from these tables.
"""
