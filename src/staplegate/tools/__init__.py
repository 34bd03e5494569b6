"""The command-line tools besides the server: check, ocsp, ctl, reload, demo."""
