import os
import sys

from ablations.cli import main

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
sys.exit(main())
