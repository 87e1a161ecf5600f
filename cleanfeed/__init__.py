"""cleanfeed: signed, verifiable URL blocklists for hotlines and ISPs."""

__version__ = "0.1.0"
