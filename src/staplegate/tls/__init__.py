"""TLS termination: ClientHello peek, SNI choice, immutable contexts, the OCSP staple callback.

The only package that imports `OpenSSL.SSL` (tests/test_import_rules.py).
"""
