"""HAProxy's runtime API (stats socket): grammar, handlers, server."""
