-- Add an item unless it exists: a restart never duplicates or overwrites (prices and stock
-- changed since stay as they are).
-- KEYS[1] item hash   ARGV[1] id, ARGV[2] name, ARGV[3] price (paise), ARGV[4] stock or '' (unlimited)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'price', ARGV[3], 'stock', ARGV[4], 'sold', 0)
return 1
