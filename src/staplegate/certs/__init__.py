"""Certificates: PEM bundles, sidecar files, issuer choice, OCSP readiness."""
