"""Suite-wide fixtures: the test PKI plugin (CA, delegated signer, live OCSP responder)."""

pytest_plugins = ["staplegate.testpki.pytest_plugin"]
