"""``python -m sedjax.train [overrides]``: same as ``sedjax-train``."""

from sedjax.train.cli import main

if __name__ == "__main__":
    main()
