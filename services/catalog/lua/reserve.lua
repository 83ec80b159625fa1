-- Hold one unit of an item for a purchase, once per purchase id.
-- KEYS[1] item hash, KEYS[2] purchase hash, KEYS[3] pending reservations (zset, score = deadline)
-- (all tagged {item:<id>})   ARGV[1] purchase id, ARGV[2] user id, ARGV[3] hold time (ms),
-- ARGV[4] the purchase's idempotency key
-- A released or expired reservation (never paid) is taken afresh when its purchase is retried.
-- Returns JSON: outcome pending | confirmed | sold_out | not_found, with the price
-- and name held for this purchase and the deadline by which it must be paid.
local item = redis.call('HMGET', KEYS[1], 'price', 'name', 'stock')
if not item[1] then
  return cjson.encode({outcome = 'not_found'})
end
local held = redis.call('HMGET', KEYS[2], 'state', 'price', 'deadline')
if held[1] == 'pending' or held[1] == 'confirmed' then
  return cjson.encode({outcome = held[1], price = tonumber(held[2]), name = item[2], deadline = tonumber(held[3])})
end
if item[3] and item[3] ~= '' then
  if tonumber(item[3]) <= 0 then
    return cjson.encode({outcome = 'sold_out'})
  end
  redis.call('HINCRBY', KEYS[1], 'stock', -1)
end
local now = redis.call('TIME')
local deadline = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'state', 'pending', 'user_id', ARGV[2], 'price', item[1], 'deadline', deadline,
  'idempotency_key', ARGV[4])
redis.call('PERSIST', KEYS[2])
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
return cjson.encode({outcome = 'pending', price = tonumber(item[1]), name = item[2], deadline = deadline})
