"""clients/isp."""
