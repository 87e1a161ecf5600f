"""clients/audit."""
