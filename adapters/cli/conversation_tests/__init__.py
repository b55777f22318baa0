"""`frontdesk test`: conversations written in YAML, run through the bot, each step checked (docs/CONVERSATION_TESTS.md).

`spec` reads the files into typed records (every error `file:line: message`), `judge` compares what a step
did with what it expected, `local` and `remote` are the two ways to run a conversation (a bot of its own,
or a running server over HTTP), `runner` drives the steps and `report` prints them (rich, JSON, JUnit XML).
"""
