-- Release a lease only if we still own it: a slow request whose lease expired and was taken
-- by another request must not delete that other request's lease.
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
