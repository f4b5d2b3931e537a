"""``python -m textgym``: the ``textgym`` console script (an entry point on the top floor)."""

import sys

from textgym.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
