"""``python -m bifrost.cli``: the same as the ``bifrost-opt`` command."""

from bifrost.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
