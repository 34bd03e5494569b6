"""Persisted staples: the state directory (atomic files); other backends later."""

from staplegate.store.atomic import write_atomically, write_sidecar_atomically
from staplegate.store.base import (
    StapleStore,
    StoreError,
    StoreErrorReason,
    StoreProblem,
    StoreProblemReason,
)
from staplegate.store.filesystem import FileStapleStore, StoreScan, cert_id_from_der
from staplegate.store.statedir import default_state_dir, resolve_state_dir

__all__ = [
    "FileStapleStore",
    "StapleStore",
    "StoreError",
    "StoreErrorReason",
    "StoreProblem",
    "StoreProblemReason",
    "StoreScan",
    "cert_id_from_der",
    "default_state_dir",
    "resolve_state_dir",
    "write_atomically",
    "write_sidecar_atomically",
]
