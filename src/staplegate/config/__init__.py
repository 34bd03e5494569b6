"""HAProxy-syntax configuration: lexer, parser, semantic checks, immutable model."""
