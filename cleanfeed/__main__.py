"""Allow ``python -m cleanfeed``."""

from cleanfeed.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
