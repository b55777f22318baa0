"""The escalation queue's Lua steps (`bot.escalations`): each status change together with the sets that index it.

Every key a step touches is passed in KEYS and carries the `{p:esc}` hash tag, so each step is
atomic on one Redis, on Sentinel and on a Redis Cluster. The sets (see `bot.keys`):

    all             every id, by creation time
    open            the unclaimed ids, by when the sweep last looked at them (`SWEEP_ONE`): the
                    reminder and expiry schedule
    status:STATUS   the ids in that status: open and claimed by creation time, resolved and expired by
                    the time they got there (so `PRUNE` finds exactly those past their retention)

An id is in exactly one status set, moved in the same step that changes the record's `status`.
"""

from __future__ import annotations

# KEYS: record, all, open schedule, status:open. ARGV: id, created at, then the record's field/value pairs.
# Create unless it exists (a message handled twice opens one escalation). 1 when created.
CREATE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], unpack(ARGV, 3))
redis.call('zadd', KEYS[2], ARGV[2], ARGV[1])
redis.call('zadd', KEYS[3], ARGV[2], ARGV[1])
redis.call('zadd', KEYS[4], ARGV[2], ARGV[1])
return 1
"""

# KEYS: record, open schedule, status:open, status:claimed. ARGV: agent, now, id.
# Only an open escalation can be claimed, so two staff members clicking Claim at once cannot both get it.
CLAIM = """
if redis.call('hget', KEYS[1], 'status') ~= 'open' then return 0 end
redis.call('hset', KEYS[1], 'status', 'claimed', 'agent', ARGV[1], 'claimed_at', ARGV[2])
redis.call('zrem', KEYS[2], ARGV[3])
redis.call('zrem', KEYS[3], ARGV[3])
redis.call('zadd', KEYS[4], redis.call('hget', KEYS[1], 'created_at') or ARGV[2], ARGV[3])
return 1
"""

# KEYS: record, open schedule, status:open, status:claimed, status:resolved. ARGV: id, agent, now, retention.
# Answers "ok", "missing", or the status that forbids it (resolved, expired).
RESOLVE = """
local status = redis.call('hget', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'open' and status ~= 'claimed' then return status end
redis.call('hset', KEYS[1], 'status', 'resolved', 'resolved_by', ARGV[2], 'resolved_at', ARGV[3])
redis.call('expire', KEYS[1], ARGV[4])
redis.call('zrem', KEYS[2], ARGV[1])
redis.call('zrem', KEYS[3], ARGV[1])
redis.call('zrem', KEYS[4], ARGV[1])
redis.call('zadd', KEYS[5], ARGV[3], ARGV[1])
return 'ok'
"""

# One unclaimed escalation's turn in the sweep every worker runs (`EscalationQueue.sweep_unclaimed`).
# KEYS: record, open schedule, status:open, status:expired.
# ARGV: id, now, due before (now - older_than), expire if created before ("" never), reminders at most (-1 no
# cap), retention.
# 0: nothing to do (another worker took this turn, or no reminder is left); 1: remind staff; 2: it expired;
# 3: not open any more (claimed by a worker of an older version, or erased): off the schedule.
# The schedule's score is the compare-and-set: only the worker that moves it past `due before` acts.
SWEEP_ONE = """
local looked = redis.call('zscore', KEYS[2], ARGV[1])
if not looked or tonumber(looked) > tonumber(ARGV[3]) then return 0 end
if redis.call('hget', KEYS[1], 'status') ~= 'open' then
  redis.call('zrem', KEYS[2], ARGV[1])
  return 3
end
local created = redis.call('hget', KEYS[1], 'created_at') or ARGV[2]
redis.call('zadd', KEYS[3], 'NX', created, ARGV[1])  -- opened by an older version: indexed now
if ARGV[4] ~= '' and tonumber(created) <= tonumber(ARGV[4]) then
  redis.call('hset', KEYS[1], 'status', 'expired', 'expired_at', ARGV[2])
  redis.call('expire', KEYS[1], ARGV[6])
  redis.call('zrem', KEYS[2], ARGV[1])
  redis.call('zrem', KEYS[3], ARGV[1])
  redis.call('zadd', KEYS[4], ARGV[2], ARGV[1])
  return 2
end
redis.call('zadd', KEYS[2], ARGV[2], ARGV[1])
local cap = tonumber(ARGV[5])
if cap >= 0 and tonumber(redis.call('hget', KEYS[1], 'reminders') or '0') >= cap then return 0 end
redis.call('hincrby', KEYS[1], 'reminders', 1)
redis.call('hset', KEYS[1], 'announced_at', ARGV[2])
return 1
"""

# Put one escalation in the status set its record names, and in no other; a record that is gone leaves them all.
# KEYS: record, status:open, status:claimed, status:resolved, status:expired, all. ARGV: id.
# The one-time backfill of escalations from before the status sets, and the repair of one a listing found
# misplaced (moved by a worker of an older version). 1 when the record exists, 0 when it is gone.
REINDEX = """
local f = redis.call('hmget', KEYS[1], 'status', 'created_at', 'resolved_at', 'expired_at')
local names = {'open', 'claimed', 'resolved', 'expired'}
local score = f[2] or '0'
if f[1] == 'resolved' then score = f[3] or score elseif f[1] == 'expired' then score = f[4] or score end
for i, name in ipairs(names) do
  if name == f[1] then redis.call('zadd', KEYS[i + 1], 'NX', score, ARGV[1])
  else redis.call('zrem', KEYS[i + 1], ARGV[1]) end
end
if not f[1] then return 0 end
redis.call('zadd', KEYS[6], 'NX', f[2] or '0', ARGV[1])
return 1
"""

# Forget the ids of resolved and expired escalations past their retention (their records have expired):
# at most ARGV[2] per set per call. KEYS: status:resolved, status:expired, all. ARGV: cutoff, limit.
PRUNE = """
local removed = 0
for i = 1, 2 do
  local gone = redis.call('zrangebyscore', KEYS[i], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
  if #gone > 0 then
    redis.call('zrem', KEYS[i], unpack(gone))
    redis.call('zrem', KEYS[3], unpack(gone))
    removed = removed + #gone
  end
end
return removed
"""
