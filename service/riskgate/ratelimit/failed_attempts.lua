-- Failed-authentication counters in fixed windows, for several subjects at once (atomic).
-- KEYS[i]: the counter of subject i. ARGV[1]: "reserve" or "release"; then, per key i,
-- ARGV[2i] = its limit and ARGV[2i+1] = its window in milliseconds.
--
-- reserve: if any counter is at its limit, change nothing and return {ms until it resets, i};
--          otherwise count this attempt in every counter (a new counter starts its window) and
--          return {0, 0}. Counting before the secret is checked is what makes concurrent
--          guesses unable to overshoot the limit.
-- release: the attempt succeeded after all: take it back from every counter still above 0.
if ARGV[1] == "release" then
    for _, key in ipairs(KEYS) do
        if tonumber(redis.call("GET", key) or "0") > 0 then
            redis.call("DECR", key)
        end
    end
    return {0, 0}
end
local wait, blocking = 0, 0
for i, key in ipairs(KEYS) do
    local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    if tonumber(redis.call("GET", key) or "0") >= limit then
        local ttl = redis.call("PTTL", key)
        if ttl < 1 then
            redis.call("PEXPIRE", key, window)
            ttl = window
        end
        if ttl > wait then
            wait, blocking = ttl, i
        end
    end
end
if wait > 0 then
    return {wait, blocking}
end
for i, key in ipairs(KEYS) do
    if redis.call("INCR", key) == 1 then
        redis.call("PEXPIRE", key, tonumber(ARGV[2 * i + 1]))
    end
end
return {0, 0}
