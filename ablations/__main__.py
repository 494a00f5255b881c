import os
import signal
import sys

from ablations.cli import main

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
rc = main()
if rc == 130:
    # Interrupted: what is left is the interpreter's exit (Ray's atexit shutdown); another
    # Ctrl-C there would print a traceback from inside it, so it ends the process at once.
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
sys.exit(rc)
