"""API keys, scopes and CSRF tokens: the server's security primitives, free of HTTP and SQL."""
