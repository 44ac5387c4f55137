"""``python -m sidra.server.cli`` = ``sidra``."""

from sidra.server.cli.main import main

main()
