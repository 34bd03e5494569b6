"""HAProxy-syntax configuration: lexer, parser, semantic checks, immutable model.

Callers use `load_config()` (the only entry point doing I/O) and the model types below.
"""

from staplegate.config.diagnostics import Diagnostic, Reason, Severity, SourceLocation
from staplegate.config.loader import LoadResult, load_config
from staplegate.config.model import (
    Backend,
    Bind,
    CertificateReference,
    CertOrigin,
    Config,
    Frontend,
    GlobalSettings,
)

__all__ = [
    "Backend",
    "Bind",
    "CertOrigin",
    "CertificateReference",
    "Config",
    "Diagnostic",
    "Frontend",
    "GlobalSettings",
    "LoadResult",
    "Reason",
    "Severity",
    "SourceLocation",
    "load_config",
]
