"""Allow ``python -m cleanfeed``."""

from cleanfeed.cli import main

main()
