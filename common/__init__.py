"""Building blocks every layer may import (`nlu`, `knowledge`, `bot`, `adapters`): nothing in here imports them.

`common.fleet`: the Redis follower loop both live reloads use (the FAQ's and the model's).
`common.supervise`: background threads restarted with backoff after any failure, and their health.
"""
