"""``python -m bridge.news inspect FILE``: check a news file (see ``bridge.news.loading.main``)."""

import sys

from bridge.errors import run_main
from bridge.news.loading import main

sys.exit(run_main(main))
