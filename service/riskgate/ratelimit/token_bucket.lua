-- One request against one client's token bucket, decided atomically on Redis's clock.
--
-- KEYS[1]  the bucket: a hash {u = units used, t = server time of u in ms}; no key = full bucket
-- ARGV[1]  limit: requests per window (the bucket holds this many requests)
-- ARGV[2]  window in milliseconds
--
-- Integer units so that nothing drifts: a request costs `window` units, the bucket refills
-- `limit` units per ms and holds `limit * window` units. The caller keeps that product below
-- 2^52, so every value here is an integer that a Lua double holds exactly.
--
-- Returns {allowed (1 or 0), requests remaining, ms until the bucket is full again,
-- ms until one more request is allowed (0 when allowed)}. A denied request writes nothing: it
-- costs no quota.

local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local capacity = limit * window

-- floor(a / b) for non-negative integers, exact even where the division rounds up.
local function idiv(a, b)
    local q = math.floor(a / b)
    if q * b > a then
        q = q - 1
    end
    return q
end

local function ceil_div(a, b)
    return idiv(a + b - 1, b)
end

-- Redis's clock, not the API pod's: every pod then agrees. Scripts may call TIME because they are
-- replicated by their effects (the default since Redis 5, the only mode since 7).
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + idiv(tonumber(time[2]), 1000)

local used = 0
local state = redis.call("HMGET", KEYS[1], "u", "t")
if state[1] then
    -- Clamped: a clock that stepped back refills nothing, a long pause cannot overflow.
    local elapsed = math.min(math.max(now - tonumber(state[2]), 0), window)
    used = math.max(tonumber(state[1]) - elapsed * limit, 0)
end

if used + window > capacity then
    return {0, 0, ceil_div(used, limit), ceil_div(used + window - capacity, limit)}
end

used = used + window
local full_in = ceil_div(used, limit)
-- "%d", not a bare number: Lua would format it with 14 significant digits and lose the rest.
redis.call("HSET", KEYS[1], "u", string.format("%d", used), "t", string.format("%d", now))
-- Once the bucket is full again a missing key says the same, so idle clients cost no memory.
redis.call("PEXPIRE", KEYS[1], full_in)
return {1, idiv(capacity - used, window), full_in, 0}
