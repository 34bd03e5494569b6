"""The fleet: staplegate instances sharing leases and staples through Redis (issue 20)."""
