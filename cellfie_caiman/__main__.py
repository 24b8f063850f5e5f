"""``python -m cellfie_caiman ...``: the ``cellfie-caiman`` command, for environments without its script."""
import sys

from .cli import main

sys.exit(main())
