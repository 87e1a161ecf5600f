"""Allow ``python -m cleanfeed``."""

from cleanfeed.cli import main

if __name__ == "__main__":
    main()
