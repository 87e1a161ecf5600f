"""Public, server-rendered pages (appeal form and status)."""

__all__: list[str] = []
