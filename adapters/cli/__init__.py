"""The `frontdesk` command line: `main` holds the typer app; one module per command group.

`faq` (kb build/search/reload/tune), `model` (model lifecycle and review export against a running
server), `staff` (staff accounts in Redis), `distill`, `data` (reading labelled CSVs) and
`exit_codes` (how every command reports an error, and its exit code). `python -m adapters.cli` runs it.
"""
