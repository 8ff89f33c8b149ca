/**
 * Lua scripts: each runs atomically in Redis, so one round trip decides an admission without races.
 * Their contracts are tested in test/unit/lua-scripts.test.ts against a real Redis.
 */

/**
 * admit — rate limits, pause, idempotent claim and stock reservation in one step. An admission also
 * enters the outbox (admissions the queue has not acknowledged yet, or V1 purchases not committed
 * yet), so one that its process never finishes is found and finished by another (purchase/outbox.ts).
 * KEYS: ready, paused, userRate, globalRate, stock, claims, pending, result, outbox
 * ARGV: userId, messageId, userMax, userWindowMs, globalMax, globalWindowMs, resultTtlSeconds (0 = no
 *       result record), date, nowIso, nowMs, outboxEntry
 * Returns {outcome, value}: NOT_READY | PAUSED | RATE_LIMITED | EXISTS <claim> | SOLD_OUT | OK <remaining>
 */
const ADMIT_ONE = `
-- NOT_READY or PAUSED while the sale's cache is being built or the sale is paused, else nil.
local function closed(ready, paused)
  if redis.call('EXISTS', ready) == 0 then return 'NOT_READY' end
  if redis.call('EXISTS', paused) == 1 then return 'PAUSED' end
  return nil
end

-- One more request in the window of a limit (max 0 = no limit); true when it is over the limit.
local function overLimit(key, max, windowMs)
  if max <= 0 then return false end
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, windowMs) end
  return n > max
end

-- One admission to a sale that is open. L: the limits and the result record's TTL.
local function admit(L, userRate, globalRate, stockKey, claims, pending, result, outbox,
                     userId, messageId, date, nowIso, nowMs, entry)
  if overLimit(userRate, L.userMax, L.userWindowMs) or overLimit(globalRate, L.globalMax, L.globalWindowMs) then
    return 'RATE_LIMITED', ''
  end
  local claim = redis.call('HGET', claims, userId)
  if claim then return 'EXISTS', claim end
  local stock = redis.call('GET', stockKey)
  if not stock then return 'NOT_READY', '' end
  if tonumber(stock) <= 0 then return 'SOLD_OUT', '' end
  local remaining = redis.call('DECR', stockKey)
  redis.call('HSET', claims, userId, messageId)
  redis.call('HSET', pending, messageId, userId)
  redis.call('ZADD', outbox, nowMs, entry)
  if L.ttl > 0 then
    redis.call('HSET', result, 'messageId', messageId, 'userId', userId, 'date', date,
      'status', 'PENDING', 'attempts', '0', 'queuedAt', nowIso, 'updatedAt', nowIso)
    redis.call('EXPIRE', result, L.ttl)
  end
  return 'OK', tostring(remaining)
end

local function limits(userMax, userWindowMs, globalMax, globalWindowMs, ttl)
  return { userMax = tonumber(userMax), userWindowMs = userWindowMs, globalMax = tonumber(globalMax),
           globalWindowMs = globalWindowMs, ttl = tonumber(ttl) }
end
`;

export const ADMIT = `${ADMIT_ONE}
local shut = closed(KEYS[1], KEYS[2])
if shut then return {shut, ''} end
local outcome, value = admit(limits(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]),
  KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9],
  ARGV[1], ARGV[2], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
return {outcome, value}
`;

/**
 * admitMany — several admissions in one call (a gateway's admissions of one event-loop turn), each
 * exactly as ADMIT decides it, in order: one that follows another of the same user in the batch finds
 * its claim. What the admissions share is sent once: a crowd's batches were mostly repeated keys and
 * limits, which the gateway encoded and Redis parsed per admission.
 * KEYS: ready, paused, globalRate, outbox, then per admission: userRate, stock, claims, pending, result
 * ARGV: userMax, userWindowMs, globalMax, globalWindowMs, resultTtlSeconds, nowMs (the outbox's
 *       score), then per admission: userId, messageId, date, nowIso, outboxEntry
 * Returns {outcome1, value1, outcome2, value2, …}.
 */
export const ADMIT_MANY = `${ADMIT_ONE}
local L = limits(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
local shut = closed(KEYS[1], KEYS[2])
local answers = {}
for i = 0, (#KEYS - 4) / 5 - 1 do
  local k, a = 4 + i * 5, 6 + i * 5
  local outcome, value = shut, ''
  if not shut then
    outcome, value = admit(L, KEYS[k + 1], KEYS[3], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
      KEYS[4], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[6], ARGV[a + 5])
  end
  answers[#answers + 1] = outcome
  answers[#answers + 1] = value
end
return answers
`;

/**
 * settle — ends reservations once their messages (or V1 purchases) have an outcome; a worker settles
 * a whole batch in one call. Idempotent: each item acts only while its message is still pending, so
 * a redelivery cannot return stock twice.
 * KEYS: stock, claims, pending (one sale day)
 * ARGV: per item, five values: userId, messageId, stockDelta (0 or 1: give the reserved ticket
 *       back), claimMode ('keep' | 'drop' | 'set'), claimValue (for 'set')
 * Returns, per item, 1 when it settled, 0 when the message was not pending.
 */
export const SETTLE = `
local results = {}
for i = 1, #ARGV, 5 do
  local user, id, delta, mode = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if redis.call('HDEL', KEYS[3], id) == 0 then
    results[#results + 1] = 0
  else
    if delta ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], delta) end
    if mode == 'drop' then
      if redis.call('HGET', KEYS[2], user) == id then redis.call('HDEL', KEYS[2], user) end
    elseif mode == 'set' then
      redis.call('HSET', KEYS[2], user, ARGV[i + 4])
    end
    results[#results + 1] = 1
  end
end
return results
`;

/**
 * adopt — counts an order the database has just committed for a message whose reservation the cache
 * no longer holds (lost when Redis was flushed with messages still queued, or undone by a gateway
 * whose publish looked failed although the message reached the queue): the ticket leaves the
 * admission stock and the user's claim names the order's message. The worker calls it only for
 * orders inserted by this very commit, so an order is adopted at most once. A claim that already
 * names the message means its ticket is counted: a settle whose answer was lost on a dropped
 * connection and that the client sent again finds nothing pending the second time, or a rebuild
 * read the order from the database.
 * KEYS: stock, claims, pending
 * ARGV: userId, messageId
 * Returns 1 when it adopted, 0 when the message is pending (settle's case) or already counted.
 */
export const ADOPT = `
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return 0 end
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
if stock > 0 then redis.call('DECR', KEYS[1]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`;

/**
 * restock — sets the admission counter from the database's remaining stock (a reconcile, a day
 * without a counter yet), less the reservations still in flight. A reservation whose order the database
 * has already committed (a worker between its commit and its settle) is in that remaining already:
 * the caller names those, so they are not taken off twice.
 * KEYS: stock, pending
 * ARGV: databaseRemaining, then the message ids of pending reservations already committed
 * Returns the new admission stock.
 */
export const RESTOCK = `
local committed = {}
for i = 2, #ARGV do committed[ARGV[i]] = true end
local reserved = 0
for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not committed[id] then reserved = reserved + 1 end
end
local stock = tonumber(ARGV[1]) - reserved
if stock < 0 then stock = 0 end
redis.call('SET', KEYS[1], stock)
return stock
`;

/**
 * shiftStock — moves the live admission counter by what the database just gave back or took (a
 * cancel's ticket, an admin's new total). A shift, not a new value: admissions and settlements that
 * run meanwhile keep their own counts, where a value computed from a read of the database would
 * overwrite an order committed and settled since that read. Never below 0, as RESTOCK: reservations
 * beyond a lowered total fail in the database as phantoms, which give nothing back.
 * KEYS: ready, stock
 * ARGV: delta
 * Returns the new stock; -1 while the cache is not ready (its rebuild reads the database), -2 when
 * the day has no stock key yet (the caller sets it with restock).
 */
export const SHIFT_STOCK = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local stock = redis.call('GET', KEYS[2])
if not stock then return -2 end
local shifted = tonumber(stock) + tonumber(ARGV[1])
if shifted < 0 then shifted = 0 end
redis.call('SET', KEYS[2], shifted)
return shifted
`;

/**
 * record — writes workers' status transitions into result hashes, never stepping back: a stale
 * delivery (a worker that woke up after another finished the message) cannot turn a terminal
 * result into a non-terminal one, and nothing replaces a SUCCESS but a SUCCESS. A non-terminal
 * transition carries only what changed, so it updates an existing record and is skipped when the
 * record is gone (Redis lost it): the terminal transition writes the whole record again.
 * Several transitions go in one call, applied in order (two of one message may be among them).
 * KEYS: result1, result2, …
 * ARGV: ttlSeconds, then for each key: status, fieldCount, field1, value1, field2, value2, …
 * Returns, for each key, 1 when written, 0 when refused or skipped.
 */
export const RECORD = `
local written = {}
local a = 2
for i, key in ipairs(KEYS) do
  local status = ARGV[a]
  local first = a + 2
  a = first + 2 * tonumber(ARGV[a + 1])
  local current = redis.call('HGET', key, 'status')
  local terminal = status == 'SUCCESS' or status == 'FAILED'
  local ok = a > first and (terminal or current ~= false)
    and not (current == 'SUCCESS' and status ~= 'SUCCESS')
    and not (current == 'FAILED' and status ~= 'SUCCESS' and status ~= 'FAILED')
  if ok then
    if status == 'SUCCESS' then redis.call('HDEL', key, 'errorCode', 'errorMessage') end
    redis.call('HSET', key, unpack(ARGV, first, a - 1))
    redis.call('EXPIRE', key, ARGV[1])
    written[i] = 1
  else
    written[i] = 0
  end
end
return written
`;

/**
 * published — what a gateway writes once JetStream acknowledged its messages (those of one
 * event-loop turn in one call): each admission leaves the outbox, and the stream sequence goes into
 * its result record for queue positions while the record is still waiting (never into a finished or
 * a lost one: the worker's final record carries the sequence itself). An entry without a sequence
 * only leaves the outbox (a publish that failed and was undone).
 * KEYS: outbox, then one result key per entry
 * ARGV: per entry: outboxEntry, seq ('' = none)
 * Returns the number of entries removed from the outbox.
 */
export const PUBLISHED = `
local removed = 0
for i = 2, #KEYS do
  local a = 2 * (i - 1) - 1
  removed = removed + redis.call('ZREM', KEYS[1], ARGV[a])
  local seq = ARGV[a + 1]
  if seq ~= '' then
    local status = redis.call('HGET', KEYS[i], 'status')
    if status and status ~= 'SUCCESS' and status ~= 'FAILED' then redis.call('HSET', KEYS[i], 'seq', seq) end
  end
end
return removed
`;

/**
 * TAKE_OVER — the outbox recovery's pass lock, from a holder that died mid-pass: only while the lock
 * still names that holder and its heartbeat has lapsed, so a live holder keeps it.
 * KEYS: lock, the holder's heartbeat
 * ARGV: holder, newHolder, lockMs
 * Returns 1 when taken, else 0.
 */
export const TAKE_OVER = `
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`;
