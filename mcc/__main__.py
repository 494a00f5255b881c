import sys

from mcc.cli import main

sys.exit(main())
