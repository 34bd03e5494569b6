"""Sans-IO CRL checks: parse, verify and consult a CRL (no I/O, no clock reads)."""
