"""``python -m kerasdojo``."""

from kerasdojo.cli import main

if __name__ == "__main__":
    main()
