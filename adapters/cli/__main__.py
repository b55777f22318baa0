"""`python -m adapters.cli`: the `frontdesk` command."""

from adapters.cli.main import main

main()
