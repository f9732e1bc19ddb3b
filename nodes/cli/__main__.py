"""``python -m nodes.cli``: the same as the ``certledger`` console script."""

from nodes.cli import main

main()
