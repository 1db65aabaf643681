"""The `switchboard` command line: a face of the services API beside `dashboard/` and `notebooks/`.

`main(argv)` runs one command and returns its exit code (console script `switchboard`,
`python -m cli`). The commands live one group per module, registered in `cli.app.GROUPS`.
"""

from cli.app import main

__all__ = ["main"]
