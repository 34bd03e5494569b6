"""What to load for one certificate: its files, and which sidecars HAProxy would look for.

A `CertificateSource` is what the configuration hands the loader: the certificate's store
name and paths. `ExtraFiles` is the global `ssl-load-extra-files` / `ssl-load-extra-del-ext`
pair, which decides which sidecar files discovery mode looks for
(docs/reference/certificates.md).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Suffixes of the members of an old-style multi-certificate bundle, in HAProxy's order.
BUNDLE_SUFFIXES = (".rsa", ".ecdsa", ".dsa")


class Sidecar(enum.Enum):
    """A file HAProxy looks for next to a certificate in discovery mode; value = suffix."""

    KEY = ".key"
    OCSP = ".ocsp"
    ISSUER = ".issuer"
    SCTL = ".sctl"


@dataclass(frozen=True)
class CertificateSource:
    """One certificate as the configuration names it.

    `discover_sidecars` is HAProxy's discovery mode (`bind crt`, crt-list lines without file
    keywords); it is False for `crt-store` `load` lines and crt-list lines naming any of
    `key`/`ocsp`/`issuer`/`sctl`, which read only the files they name.
    """

    name: str
    crt_path: Path
    key_path: Path | None = None
    ocsp_path: Path | None = None
    issuer_path: Path | None = None
    sctl_path: Path | None = None
    discover_sidecars: bool = True

    @classmethod
    def from_path(cls, path: Path | str) -> CertificateSource:
        """A `bind crt <path>` certificate: named by its path, with sidecar discovery."""
        path = Path(path)
        return cls(name=str(path), crt_path=path)


_EXTRA_WORDS = ("bundle", "sctl", "ocsp", "issuer", "key")


@dataclass(frozen=True)
class ExtraFiles:
    """`ssl-load-extra-files` (which sidecars to read) and `ssl-load-extra-del-ext`."""

    key: bool = True
    issuer: bool = True
    ocsp: bool = True
    sctl: bool = True
    bundle: bool = True
    del_ext: bool = False

    @classmethod
    def parse(cls, words: Sequence[str], del_ext: bool) -> ExtraFiles:
        """Parse the arguments of `ssl-load-extra-files` (HAProxy's rules and messages).

        Raises ValueError when a word is unknown or `none`/`all` is combined with others.
        """
        keyword = "ssl-load-extra-files"
        if not words:
            raise ValueError(
                f"'{keyword}' expects one or multiple arguments "
                "(none, all, bundle, sctl, ocsp, issuer, key)."
            )
        if any(word in ("none", "all") for word in words):
            if len(words) != 1:
                raise ValueError(f"'{keyword}' 'none' and 'all' can be only used alone")
            enabled = words[0] == "all"
            return cls(
                key=enabled,
                issuer=enabled,
                ocsp=enabled,
                sctl=enabled,
                bundle=enabled,
                del_ext=del_ext,
            )
        for word in words:
            if word not in _EXTRA_WORDS:
                raise ValueError(
                    f"'{keyword}' expects one or multiple arguments "
                    f"(none, all, bundle, sctl, ocsp, issuer, key), not '{word}'."
                )
        chosen = set(words)
        return cls(
            key="key" in chosen,
            issuer="issuer" in chosen,
            ocsp="ocsp" in chosen,
            sctl="sctl" in chosen,
            bundle="bundle" in chosen,
            del_ext=del_ext,
        )

    def reads(self, sidecar: Sidecar) -> bool:
        """True when discovery mode looks for this sidecar."""
        return {
            Sidecar.KEY: self.key,
            Sidecar.OCSP: self.ocsp,
            Sidecar.ISSUER: self.issuer,
            Sidecar.SCTL: self.sctl,
        }[sidecar]


def sidecar_base(crt_path: Path, extra: ExtraFiles) -> str:
    """The base name sidecars hang off: the path, minus a trailing `.crt` with del_ext.

    Bundle suffixes (`.rsa`, `.ecdsa`, `.dsa`) are never stripped, as in HAProxy.
    """
    text = str(crt_path)
    if extra.del_ext and text.endswith(".crt"):
        return text[: -len(".crt")]
    return text


def sidecar_path(crt_path: Path, sidecar: Sidecar, extra: ExtraFiles) -> Path:
    """Where discovery mode looks for `sidecar` (`site.pem` -> `site.pem.ocsp`)."""
    return Path(sidecar_base(crt_path, extra) + sidecar.value)
