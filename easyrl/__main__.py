"""``python -m easyrl``: the ``easyrl`` command (see :mod:`easyrl.cli`)."""

from easyrl.cli import main

raise SystemExit(main())
