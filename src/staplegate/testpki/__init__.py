"""Test PKI: a CA in openssl's layout and an OCSP responder, for tests, demos and QA."""
