"""`python -m soclake.cli`: the same as the `soclake` command."""
import sys

from soclake.cli import main

sys.exit(main())
