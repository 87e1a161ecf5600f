"""cleanfeed: signed, verifiable URL blocklists for hotlines and ISPs."""

__all__ = [
    "__version__",
]

__version__ = "0.1.0"
