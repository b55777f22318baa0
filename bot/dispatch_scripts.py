"""The dispatcher's Lua scripts (`bot.dispatch`): each a step Redis runs atomically on one conversation's slot.

Kept apart so `bot.dispatch` reads as the algorithm; every script's keys share the conversation's hash tag.
"""

RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


# Remember the platform's message id and queue the message in one step: a process dying between the two
# would leave an id marked seen whose message was never queued, and every redelivery waiting for it forever.
# KEYS: seen, inbox (the conversation's hash tag). ARGV: uid, seen TTL, item. The uid of the first intake, if any.
ENQUEUE = """
local first = redis.call('get', KEYS[1])
if first then return first end
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('rpush', KEYS[2], ARGV[3])
return false
"""


# The next message to handle, only while the lease is ours: one left in `processing` by a dead worker first
# ([1, raw]), else the inbox's oldest moved into `processing` ([0, raw]); [] when there is none (the lease is
# then given back in the same step), [-1] when the lease is no longer ours.
# KEYS: lock, processing, inbox (one conversation's tag). ARGV: token.
NEXT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return {-1} end
local raw = redis.call('lindex', KEYS[2], 0)
if raw then return {1, raw} end
raw = redis.call('lmove', KEYS[3], KEYS[2], 'LEFT', 'RIGHT')
if raw then return {0, raw} end
redis.call('del', KEYS[1])
return {}
"""

# The commit of a handled message, fenced by the lease token: store its replies (ARGV[2]; '' when they were
# stored before), wake its waiter, pop it from `processing`, extend OUR lease. 0 when the lease is not ours.
# A message of a push channel (ARGV[6], its queued item, not '') is also noted as undelivered (KEYS[5], uid ARGV[7])
# until `finish_delivery` records it sent: a worker dying between this commit and the post leaves the note to the
# sweeper. The message's side effects outside its conversation (ARGV[8], JSON, or '') go into the effects outbox
# (KEYS[6]) in the same step, run right after the commit and by the sweeper if the worker dies first.
# KEYS: lock, processing, result, done, undelivered, effects. ARGV: token, replies JSON, retention s, done TTL s,
# lease ms, item JSON or '', uid, effects JSON or ''.
COMMIT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then
  redis.call('set', KEYS[3], ARGV[2], 'EX', ARGV[3])
  redis.call('rpush', KEYS[4], 1)
  redis.call('expire', KEYS[4], ARGV[4])
  if ARGV[6] ~= '' then
    redis.call('hset', KEYS[5], ARGV[7], ARGV[6])
    redis.call('expire', KEYS[5], ARGV[3])
  end
  if ARGV[8] ~= '' then
    redis.call('hset', KEYS[6], ARGV[7], ARGV[8])
    redis.call('expire', KEYS[6], ARGV[3])
  end
end
redis.call('lpop', KEYS[2])
redis.call('pexpire', KEYS[1], ARGV[5])
return 1
"""

# The sweeper's look at one marked conversation: 'busy' (someone holds the lease), 'empty' (nothing to do),
# or 'claimed' (lease taken with ARGV[1] for ARGV[2] ms: work, or answers not yet delivered, left behind).
# KEYS: lock, processing, inbox, undelivered, effects.
CLAIM = """
if redis.call('exists', KEYS[1]) == 1 then return 'busy' end
if redis.call('llen', KEYS[2]) + redis.call('llen', KEYS[3]) + redis.call('hlen', KEYS[4])
   + redis.call('hlen', KEYS[5]) == 0 then
  return 'empty'
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'claimed'
"""

# Unmark a conversation unless it was marked again after the sweeper looked (a newer intake keeps it).
# KEYS: pending. ARGV: conversation, the score the sweeper read.
UNMARK = """
local score = redis.call('zscore', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then return redis.call('zrem', KEYS[1], ARGV[1]) end
return 0
"""
