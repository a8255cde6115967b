"""``python -m flightrec.testing.bureau``: serve the bureau simulator until SIGTERM / SIGINT."""

import sys

from flightrec.testing.bureau.simulator import main

sys.exit(main())
