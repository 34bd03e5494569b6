"""Suite-wide fixtures: the test PKI plugin (CA, delegated signer, live OCSP responder) and a
real redis-server for the fleet tests (tests/redis_server.py)."""

pytest_plugins = ["staplegate.testpki.pytest_plugin", "tests.redis_server", "tests.mariadb_server"]
