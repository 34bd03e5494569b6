"""The sans-IO OCSP core: CertId, requests, response verification, scheduling."""
