"""Fuzz targets for the network-facing parsers, shared by the default suite and `bench/fuzz.py`.

Each module here exposes ``NAME`` (a short label), ``seeds() -> list[bytes]`` (valid inputs the
mutator starts from) and ``run_one(data: bytes) -> None``, which feeds one input to the parser
under test. ``run_one`` raises :class:`Disagreement` when a differential check fails (for
example our HTTP reader and h11 disagree on where a message ends) or a safety property breaks
(an altered signed part accepted); any other exception escaping it is an unexpected one, a bug.
The hypothesis tests (``tests/unit/<package>/test_*_fuzz.py``) call the same ``run_one`` for
a bounded number of examples; ``bench/fuzz.py`` runs each target for a million mutated inputs.
"""


class Disagreement(Exception):
    """A differential or safety check failed for one input."""
