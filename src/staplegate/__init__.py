"""staplegate: an OCSP-stapling TLS front end configured in HAProxy's syntax."""

__version__ = "0.1.0"
