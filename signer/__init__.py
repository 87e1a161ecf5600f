"""signer."""

__all__: list[str] = []
