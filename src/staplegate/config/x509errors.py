"""OpenSSL's certificate verification error codes by name, for `ca-ignore-err`/`crt-ignore-err`.

HAProxy takes a comma-separated list of numeric IDs or `X509_V_ERR_*` constant names (or
`all`). The table is OpenSSL's `x509_vfy.h` as staplegate's OpenSSL build defines it; any
other code can still be written as a number.
"""

from __future__ import annotations

from staplegate.config.model import IGNORE_ALL_ERRORS

#: The highest code a number may name (HAProxy's SSL_MAX_VFY_ERROR_CODE is about this size).
MAX_ERROR_CODE = 127

X509_V_ERRORS: dict[str, int] = {
    "X509_V_ERR_UNSPECIFIED": 1,
    "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT": 2,
    "X509_V_ERR_UNABLE_TO_GET_CRL": 3,
    "X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE": 4,
    "X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE": 5,
    "X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY": 6,
    "X509_V_ERR_CERT_SIGNATURE_FAILURE": 7,
    "X509_V_ERR_CRL_SIGNATURE_FAILURE": 8,
    "X509_V_ERR_CERT_NOT_YET_VALID": 9,
    "X509_V_ERR_CERT_HAS_EXPIRED": 10,
    "X509_V_ERR_CRL_NOT_YET_VALID": 11,
    "X509_V_ERR_CRL_HAS_EXPIRED": 12,
    "X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD": 13,
    "X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD": 14,
    "X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD": 15,
    "X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD": 16,
    "X509_V_ERR_OUT_OF_MEM": 17,
    "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT": 18,
    "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN": 19,
    "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY": 20,
    "X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE": 21,
    "X509_V_ERR_CERT_CHAIN_TOO_LONG": 22,
    "X509_V_ERR_CERT_REVOKED": 23,
    "X509_V_ERR_PATH_LENGTH_EXCEEDED": 25,
    "X509_V_ERR_INVALID_PURPOSE": 26,
    "X509_V_ERR_CERT_UNTRUSTED": 27,
    "X509_V_ERR_CERT_REJECTED": 28,
    "X509_V_ERR_SUBJECT_ISSUER_MISMATCH": 29,
    "X509_V_ERR_AKID_SKID_MISMATCH": 30,
    "X509_V_ERR_AKID_ISSUER_SERIAL_MISMATCH": 31,
    "X509_V_ERR_KEYUSAGE_NO_CERTSIGN": 32,
    "X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER": 33,
    "X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION": 34,
    "X509_V_ERR_KEYUSAGE_NO_CRL_SIGN": 35,
    "X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION": 36,
    "X509_V_ERR_INVALID_NON_CA": 37,
    "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED": 38,
    "X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE": 39,
    "X509_V_ERR_PROXY_CERTIFICATES_NOT_ALLOWED": 40,
    "X509_V_ERR_INVALID_EXTENSION": 41,
    "X509_V_ERR_INVALID_POLICY_EXTENSION": 42,
    "X509_V_ERR_NO_EXPLICIT_POLICY": 43,
    "X509_V_ERR_DIFFERENT_CRL_SCOPE": 44,
    "X509_V_ERR_UNSUPPORTED_EXTENSION_FEATURE": 45,
    "X509_V_ERR_UNNESTED_RESOURCE": 46,
    "X509_V_ERR_PERMITTED_VIOLATION": 47,
    "X509_V_ERR_EXCLUDED_VIOLATION": 48,
    "X509_V_ERR_SUBTREE_MINMAX": 49,
    "X509_V_ERR_APPLICATION_VERIFICATION": 50,
    "X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE": 51,
    "X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX": 52,
    "X509_V_ERR_UNSUPPORTED_NAME_SYNTAX": 53,
    "X509_V_ERR_CRL_PATH_VALIDATION_ERROR": 54,
    "X509_V_ERR_HOSTNAME_MISMATCH": 62,
    "X509_V_ERR_EMAIL_MISMATCH": 63,
    "X509_V_ERR_IP_ADDRESS_MISMATCH": 64,
    "X509_V_ERR_INVALID_CA": 79,
}


def parse_ignore_errors(text: str) -> frozenset[int] | str:
    """The codes `text` names, or a message naming the first word that is not a code."""
    codes: set[int] = set()
    for word in text.split(","):
        if word == "all":
            codes.add(IGNORE_ALL_ERRORS)
        elif word.isdigit() and 0 < int(word) <= MAX_ERROR_CODE:
            codes.add(int(word))
        elif word in X509_V_ERRORS:
            codes.add(X509_V_ERRORS[word])
        else:
            return (
                f"unknown verify error '{word}': use 'all', a number from 1 to "
                f"{MAX_ERROR_CODE} or an X509_V_ERR_* name"
            )
    return frozenset(codes)
