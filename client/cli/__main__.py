"""``python -m sidra.cli`` = ``sidra``."""

from sidra.cli.main import main

main()
