"""Fixtures for the OCSP core's tests; the PKI builders live in ocsp_pki.py."""

from .ocsp_pki import pki

__all__ = ["pki"]
