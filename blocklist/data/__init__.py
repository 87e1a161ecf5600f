"""Data files shipped with the package: the default guard list and the CDN networks."""

__all__: list[str] = []
