"""The OCSP core's test PKI (real DER) for the fleet's tests."""

from tests.unit.ocsp.ocsp_pki import pki

__all__ = ["pki"]
