"""``python -m herdcache``: see herdcache.cli."""

from .cli import main

raise SystemExit(main())
