"""The sidecar: staplegate's OCSP engine beside a HAProxy or nginx the operator already runs.

`targets` holds the shared vocabulary (what a configuration reader finds, where staples go);
`haproxy_config`/`nginx_config` read someone else's configuration for its certificates only;
`haproxy_push`, `ocsp_files` and `nginx_delivery` deliver verified staples; `service` runs the
updater and hands every change of its staple table to each delivery.
"""
