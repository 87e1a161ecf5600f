"""clients/isp."""

__all__: list[str] = []
