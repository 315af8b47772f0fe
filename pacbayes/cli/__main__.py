"""``python -m pacbayes.cli``: the ``pacbayes`` command."""

from pacbayes.cli import main

main()
