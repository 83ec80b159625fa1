-- Move money into or out of one wallet, atomically and at most once per idempotency key.
-- Everything is checked before anything is written; then the balance, the ledger entry and the
-- idempotency record are written together.
-- KEYS[1] wallet hash, KEYS[2] ledger list, KEYS[3] idempotency record (all tagged {user:<id>})
-- ARGV[1] 'debit' or 'credit'   ARGV[2] amount (paise)   ARGV[3] entry type (SPEND, BUY, ...)
-- ARGV[4] description   ARGV[5] item id or ''   ARGV[6] request fingerprint   ARGV[7] ledger entry id
-- ARGV[8] idempotency record TTL (s)   ARGV[9] deadline (epoch ms, 0 = none)   ARGV[10] max balance
-- ARGV[11] user id
-- Returns the outcome as JSON: ok | insufficient | too_large | conflict | no_wallet | expired.
local stored = redis.call('GET', KEYS[3])
if stored then
  local record = cjson.decode(stored)
  if record.fingerprint ~= ARGV[6] then
    return cjson.encode({outcome = 'conflict'})
  end
  record.replay = true
  return cjson.encode(record)
end

local amount, deadline, max_balance = tonumber(ARGV[2]), tonumber(ARGV[9]), tonumber(ARGV[10])
if not amount or amount <= 0 or amount ~= math.floor(amount) or (ARGV[1] ~= 'debit' and ARGV[1] ~= 'credit') then
  return redis.error_reply('invalid arguments')
end
local wallet = redis.call('HMGET', KEYS[1], 'balance', 'username')
if not wallet[1] then
  return cjson.encode({outcome = 'no_wallet'})
end
local now = redis.call('TIME')
local timestamp = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if deadline > 0 and timestamp > deadline then
  return cjson.encode({outcome = 'expired'})  -- not recorded: nothing happened
end

local balance = tonumber(wallet[1])
local record
if ARGV[1] == 'debit' and balance < amount then
  record = {outcome = 'insufficient', balance = balance}
elseif ARGV[1] == 'credit' and balance + amount > max_balance then
  record = {outcome = 'too_large', balance = balance}
else
  if ARGV[1] == 'debit' then balance = balance - amount else balance = balance + amount end
  local item_id = cjson.null
  if ARGV[5] ~= '' then item_id = tonumber(ARGV[5]) end
  redis.call('HSET', KEYS[1], 'balance', balance)
  redis.call('RPUSH', KEYS[2], cjson.encode({
    id = tonumber(ARGV[7]), user_id = tonumber(ARGV[11]), type = ARGV[3], amount = amount,
    description = ARGV[4], item_id = item_id, balance_after = balance, timestamp = timestamp,
  }))
  record = {outcome = 'ok', balance = balance, entry_id = tonumber(ARGV[7])}
end
record.username = wallet[2]
record.fingerprint = ARGV[6]
redis.call('SET', KEYS[3], cjson.encode(record), 'EX', tonumber(ARGV[8]))
record.replay = false
return cjson.encode(record)
