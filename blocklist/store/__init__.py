"""blocklist/store."""
