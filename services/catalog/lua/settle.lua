-- Settle a pending reservation: 'confirmed' (paid: the unit is sold), or 'released' / 'expired'
-- (not paid: the unit returns to stock). A settled reservation stays as it is.
-- KEYS[1] item hash, KEYS[2] purchase hash, KEYS[3] pending reservations
-- ARGV[1] purchase id, ARGV[2] new state, ARGV[3] how long an unpaid record is kept (s)
-- Returns the state the reservation is in afterwards, or 'unknown'.
local state = redis.call('HGET', KEYS[2], 'state')
if not state then
  return 'unknown'
end
if state ~= 'pending' then
  return state
end
if ARGV[2] == 'confirmed' then
  redis.call('HINCRBY', KEYS[1], 'sold', 1)
else
  local stock = redis.call('HGET', KEYS[1], 'stock')
  if stock and stock ~= '' then
    redis.call('HINCRBY', KEYS[1], 'stock', 1)
  end
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
end
redis.call('HSET', KEYS[2], 'state', ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return ARGV[2]
