"""The data plane of one worker: accept, terminate TLS, forward TCP or HTTP/1.1, balance."""
