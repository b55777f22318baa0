"""Topics of unanswered questions, `python -m bench.topics` (run.py; data.py, bot.py, scores.py, scale.py,
report.py): CLINC150 intents the demo store does not cover, sent through the real bot, grouped by
`Gaps.topics` and scored against their true intents; clustering time at 100k messages."""
