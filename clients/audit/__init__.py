"""clients/audit."""

__all__: list[str] = []
