"""clients."""

__all__: list[str] = []
