"""Render the `openssl.cnf` of a test CA directory, so `openssl ca` and `openssl ocsp` share it.

The file is ours (not copied from any guide): it points `openssl ca` at the same database,
serial, keys and certificates the Python API uses, and carries extension sections that make
the same kinds of certificates `CertificateAuthority.issue` and `.ocsp_signer` make. `dir` is
the absolute path of the CA directory at `init` time, because OpenSSL 3.0 has no way to say
"relative to this file".
"""

from __future__ import annotations

from pathlib import Path

# Names of the files inside a CA directory, shared with ca.py so both always agree.
INDEX = "index.txt"
SERIAL = "serial"
CRLNUMBER = "crlnumber"
CA_CERT = "certs/ca.pem"
CA_KEY = "private/ca.key"
CRL = "crl/crl.pem"


def _quote(value: str) -> str:
    """Escape `$` and `\\` so openssl's config parser keeps the value verbatim."""
    return value.replace("\\", "\\\\").replace("$", "\\$")


def render_openssl_cnf(
    directory: Path,
    *,
    ocsp_url: str | None,
    default_days: int = 90,
    default_crl_days: int = 7,
    digest: str = "sha256",
) -> str:
    """The text of DIR/openssl.cnf for a CA living in `directory` (absolute)."""
    aia = f"authorityInfoAccess = OCSP;URI:{_quote(ocsp_url)}\n" if ocsp_url else ""
    server = (
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth, clientAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid:always\n"
        f"{aia}"
    )
    return f"""\
# openssl configuration of a staplegate test CA (written by `staplegate ca init`), e.g.
#   openssl ca -config openssl.cnf -batch -in REQ.csr -out CERT.pem
#   openssl ca -config openssl.cnf -revoke CERT.pem -crl_reason superseded
#   openssl ocsp -index index.txt -CA certs/ca.pem -rsigner ... -rkey ... -reqin ... -respout ...
# Extension sections: server_cert (default), server_cert_must_staple, ocsp_signer,
# ocsp_signer_nocheck; choose one with `openssl ca -extensions NAME`.

[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {_quote(str(directory))}
certs = $dir/certs
crl_dir = $dir/crl
new_certs_dir = $dir/newcerts
database = $dir/{INDEX}
serial = $dir/{SERIAL}
crlnumber = $dir/{CRLNUMBER}
crl = $dir/{CRL}
certificate = $dir/{CA_CERT}
private_key = $dir/{CA_KEY}
default_md = {digest}
default_days = {default_days}
default_crl_days = {default_crl_days}
policy = policy_cn_only
email_in_dn = no
unique_subject = yes
copy_extensions = copy
preserve = no
name_opt = ca_default
cert_opt = ca_default
x509_extensions = server_cert
crl_extensions = crl_ext

[ policy_cn_only ]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
emailAddress = optional

[ server_cert ]
{server}
[ server_cert_must_staple ]
{server}tlsfeature = status_request

[ ocsp_signer ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ ocsp_signer_nocheck ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
noCheck = ignored

[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ req ]
distinguished_name = req_dn
prompt = no
default_md = {digest}
string_mask = utf8only

[ req_dn ]
commonName = staplegate request
"""
