-- Create a user unless the username is taken, and queue its wallet for opening, atomically.
-- KEYS[1] username index (hash: username key -> id), KEYS[2] id counter, KEYS[3] wallet outbox (set)
-- ARGV[1] username key, ARGV[2] username, ARGV[3] password hash, ARGV[4] created-at (ISO), ARGV[5] user key prefix
-- The user hash shares the {auth:users} hash tag of the declared keys, so this runs on one cluster slot.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
local id = redis.call('INCR', KEYS[2])
redis.call('HSET', ARGV[5] .. id, 'id', id, 'username', ARGV[2], 'password_hash', ARGV[3],
  'role', 'user', 'created_at', ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], id)
redis.call('SADD', KEYS[3], id)
return id
