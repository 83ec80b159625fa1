-- Open a wallet with its REGISTER credit, once: a repeat (a retried registration) changes nothing.
-- KEYS[1] wallet hash, KEYS[2] ledger list (both tagged {user:<id>})
-- ARGV[1] user id, ARGV[2] username, ARGV[3] opening balance (paise), ARGV[4] ledger entry id
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local user_id, opening = tonumber(ARGV[1]), tonumber(ARGV[3])
if not user_id or not opening or opening < 0 or opening ~= math.floor(opening) then
  return redis.error_reply('invalid arguments')
end
local now = redis.call('TIME')
local timestamp = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[1], 'user_id', user_id, 'username', ARGV[2], 'balance', opening)
redis.call('RPUSH', KEYS[2], cjson.encode({
  id = tonumber(ARGV[4]), user_id = user_id, type = 'REGISTER', amount = opening,
  description = 'Initial Wallet Setup', item_id = cjson.null, balance_after = opening, timestamp = timestamp,
}))
return 1
