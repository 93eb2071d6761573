"""``python -m latentode.cli``: the same as the ``latentode`` command."""

from latentode.cli import main

raise SystemExit(main())
