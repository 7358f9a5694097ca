"""`python -m gptcore COMMAND ...`: the headless CLI without the app, e.g. under
`torchrun --nproc_per_node=N -m gptcore train --config FILE` (DDP)."""

import sys

from gptcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
