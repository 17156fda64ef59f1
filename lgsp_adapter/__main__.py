"""``python -m lgsp_adapter`` is the ``lgsp-adapter`` command."""

from lgsp_adapter.cli.main import main

main()
