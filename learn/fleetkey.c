/*
 * Redis key names and scripts of the shared map (fleetkey.h). The scripts
 * only append, dedupe, cap and set TTLs: what a batch means is decided by
 * the instances, with learn/'s own code (fleetfold.h).
 */
#include "fleetkey.h"

#include <inttypes.h>
#include <stdio.h>

#include "fleetlog.h"
#include "fleetmark.h"
#include "herald/error.h"

static const char *const names[FLEETKEY_NAME_COUNT_] = {
    "epoch", "log", "steer", "steer:chan", "pins", "base", "base:lock",
};

bool fleetkey_prefix_valid(const char *prefix)
{
    if (prefix == NULL)
        return false;
    size_t n = 0;
    for (const char *p = prefix; *p; p++, n++)
        if (n >= FLEETKEY_MAX_PREFIX || *p <= ' ' || *p > '~')
            return false;
    return true;
}

static int out(char *buf, size_t len, int n)
{
    if (n < 0)
        return HERALD_EINVAL;
    if ((size_t)n >= len)
        return HERALD_ETOOBIG;
    return n;
}

int fleetkey_build(char *buf, size_t len, const char *prefix, fleetkey_name_t which)
{
    if (buf == NULL || !fleetkey_prefix_valid(prefix) || (unsigned)which >= FLEETKEY_NAME_COUNT_)
        return HERALD_EINVAL;
    return out(buf, len, snprintf(buf, len, "%sv1:%s", prefix, names[which]));
}

static int with_id(char *buf, size_t len, const char *prefix, const char *what, const char *id)
{
    if (buf == NULL || !fleetkey_prefix_valid(prefix) || !fleetlog_instance_valid(id))
        return HERALD_EINVAL;
    return out(buf, len, snprintf(buf, len, "%sv1:%s:%s", prefix, what, id));
}

int fleetkey_seq(char *buf, size_t len, const char *prefix, const char *instance)
{
    return with_id(buf, len, prefix, "seq", instance);
}

int fleetkey_steer_seq(char *buf, size_t len, const char *prefix, const char *instance)
{
    return with_id(buf, len, prefix, "steer:seq", instance);
}

int fleetkey_base_chunks(char *buf, size_t len, const char *prefix, const char *gen)
{
    return with_id(buf, len, prefix, "base", gen);
}

int fleetkey_mark(char *buf, size_t len, const char *prefix, uint64_t client, const char *key)
{
    if (buf == NULL || !fleetkey_prefix_valid(prefix) || client == 0 || key == NULL)
        return HERALD_EINVAL;
    return out(buf, len,
               snprintf(buf, len, "%sv1:mark:%016" PRIx64 ":%016" PRIx64, prefix, client,
                        fleetmark_key_hash(key)));
}

/*
 * Lua 5.1 numbers are doubles: sequence numbers stay below 2^53
 * (FLEETLOG_MAX_INT), and stored numbers are handed back as the strings
 * Redis holds, never through tostring() (which would print 1e+15).
 */

const char FLEETKEY_LUA_EPOCH[] = "local cur = redis.call('GET', KEYS[1])\n"
                                  "if cur then\n"
                                  "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                  "  return {'existing', cur}\n"
                                  "end\n"
                                  "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                                  "return {'new', ARGV[1]}\n";

const char FLEETKEY_LUA_APPEND[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur ~= ARGV[1] then return {'epoch', cur or ''} end\n"
    "if string.len(ARGV[4]) > tonumber(ARGV[7]) then return {'toobig', ''} end\n"
    "local ttl = tonumber(ARGV[6])\n"
    "local function take(k, v)\n"
    "  if redis.call('SET', k, v, 'NX', 'PX', ARGV[8]) then return true end\n"
    "  return redis.call('GET', k) == v\n"
    "end\n"
    "local x, y, k, i = {}, {}, 4, 10\n"
    "while ARGV[i] do\n"
    "  local rec, nk = ARGV[i], tonumber(ARGV[i + 1])\n"
    "  local v = ARGV[9] .. ':' .. rec\n"
    "  if not take(KEYS[k], v) then\n"
    "    x[#x + 1] = rec\n"
    "  elseif nk == 2 and not take(KEYS[k + 1], v) then\n"
    "    y[#y + 1] = rec\n"
    "  end\n"
    "  k, i = k + nk, i + 2\n"
    "end\n"
    "local xs, ys = table.concat(x, ','), table.concat(y, ',')\n"
    "local last = redis.call('GET', KEYS[3])\n"
    "if last and tonumber(ARGV[3]) <= tonumber(last) then\n"
    "  redis.call('PEXPIRE', KEYS[3], ttl)\n"
    "  return {'dup', last, xs, ys}\n"
    "end\n"
    "local f = {'i', ARGV[2], 's', ARGV[3], 'b', ARGV[4]}\n"
    "if xs ~= '' then f[#f + 1] = 'x'; f[#f + 1] = xs end\n"
    "if ys ~= '' then f[#f + 1] = 'y'; f[#f + 1] = ys end\n"
    "local id = redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '*', unpack(f))\n"
    "redis.call('SET', KEYS[3], ARGV[3], 'PX', ttl)\n"
    "redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "return {'ok', id, xs, ys}\n";

const char FLEETKEY_LUA_STEER[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur ~= ARGV[1] then return {'epoch', cur or ''} end\n"
    "if string.len(ARGV[6]) > tonumber(ARGV[10]) then return {'toobig', ''} end\n"
    "local ttl = tonumber(ARGV[9])\n"
    "local last = redis.call('GET', KEYS[4])\n"
    "if last and tonumber(ARGV[3]) <= tonumber(last) then\n"
    "  redis.call('PEXPIRE', KEYS[4], ttl)\n"
    "  return {'dup', last}\n"
    "end\n"
    "local op = ARGV[4]\n"
    "if op == 'pin' or op == 'ban' then\n"
    "  if redis.call('HEXISTS', KEYS[2], ARGV[5]) == 0 and\n"
    "     redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[11]) then\n"
    "    return {'full', ''}\n"
    "  end\n"
    "  redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])\n"
    "elseif op == 'learned' or op == 'forget-edge' then\n"
    "  redis.call('HDEL', KEYS[2], ARGV[5])\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[8], '*', 'm', ARGV[6])\n"
    "redis.call('SET', KEYS[4], ARGV[3], 'PX', ttl)\n"
    "redis.call('PEXPIRE', KEYS[3], ttl)\n"
    "redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "redis.call('PUBLISH', ARGV[7], id .. ' ' .. ARGV[6])\n"
    "return {'ok', id}\n";

const char FLEETKEY_LUA_MARK[] = "local r = {}\n"
                                 "for i, k in ipairs(KEYS) do\n"
                                 "  if redis.call('SET', k, '1', 'NX', 'PX', ARGV[1]) then\n"
                                 "    r[i] = 0\n"
                                 "  else\n"
                                 "    local t = redis.call('PTTL', k)\n"
                                 "    if t < 1 then t = 1 end\n"
                                 "    r[i] = t\n"
                                 "    return r\n"
                                 "  end\n"
                                 "end\n"
                                 "return r\n";

const char FLEETKEY_LUA_BASE[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur ~= ARGV[1] then return {'epoch', cur or ''} end\n"
    "local old = redis.call('HGET', KEYS[2], 'list') or ''\n"
    "if old ~= '' and old ~= KEYS[4] then return {'race', old} end\n"
    "if redis.call('LLEN', KEYS[3]) ~= tonumber(ARGV[3]) then return {'short', ''} end\n"
    "redis.call('HSET', KEYS[2], 'hdr', ARGV[2], 'list', KEYS[3])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[4])\n"
    "if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[4]) end\n"
    "if old ~= '' and KEYS[4] ~= KEYS[3] then redis.call('PEXPIRE', KEYS[4], ARGV[5]) end\n"
    "return {'ok', ''}\n";

const char FLEETKEY_LUA_TOUCH[] = "local n = 0\n"
                                  "for i, k in ipairs(KEYS) do\n"
                                  "  n = n + redis.call('PEXPIRE', k, ARGV[1])\n"
                                  "end\n"
                                  "return n\n";
