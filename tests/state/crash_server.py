"""The server the server-crash test kills: restores, then serves an ideal board with a store.

Run as ``python crash_server.py STORE``: opens a fresh ideal emulator (seed 1,
as after a power cut), writes the store's golden targets back onto it (what
``sidra serve --restore`` does), serves it with the store on a free loopback
port and prints ``port N`` once it answers. Serves until killed.
"""

from __future__ import annotations

import sys
import threading

from state_support import IDEAL_URL, served_with_store

from sidra.drivers import open_board
from sidra.server.state import StateStore, restore


def main(path: str) -> None:
    with open_board(IDEAL_URL) as board, StateStore(path) as store:
        restore(board, store)
        with served_with_store(board, store) as port:
            print(f"port {port}", flush=True)
            threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
