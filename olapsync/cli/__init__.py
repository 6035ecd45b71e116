"""The `olapsync` command (`olapsync.cli:main`): `commands` (and `sync`, for `sync` and
`verify`) parses options and calls the library, `render` prints what it returns, `live` draws
a run's progress, `group` catches every error in one place and `exits` names the exit
statuses.
"""

from __future__ import annotations

from olapsync.cli.commands import main

__all__ = ["main"]
