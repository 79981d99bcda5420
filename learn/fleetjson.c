/* The shared frame of the fleet's JSON values (fleetjson.h). */
#include "fleetjson.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "herald/error.h"

int fleetjson_reason(char *reason, size_t reasonlen, int rc, const char *fmt, ...)
{
    if (reason != NULL && reasonlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, reasonlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

const char *fleetjson_unknown(json_t *o, const char *const *names, size_t n)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (i < n && strcmp(k, names[i]) != 0)
            i++;
        if (i == n)
            return k;
    }
    return NULL;
}

int fleetjson_open(const char *data, size_t len, size_t max, json_int_t version,
                   const char *const *members, size_t n, json_t **out, char *reason,
                   size_t reasonlen)
{
    if (reason != NULL && reasonlen > 0)
        reason[0] = '\0';
    if (out == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    if (data == NULL)
        return fleetjson_reason(reason, reasonlen, HERALD_EINVAL, "no data");
    if (len > max)
        return fleetjson_reason(reason, reasonlen, HERALD_ETOOBIG, "%zu bytes (at most %zu)", len,
                                max);
    json_error_t err;
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (o == NULL)
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "JSON: %s at %d", err.text,
                                err.position);
    int rc = 0;
    json_t *v = json_object_get(o, "v");
    const char *unknown;
    if (!json_is_object(o))
        rc = fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "not a JSON object");
    else if (!json_is_integer(v))
        rc = fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "no \"v\"");
    else if (json_integer_value(v) != version)
        rc = fleetjson_reason(reason, reasonlen, HERALD_EUNSUPPORTED,
                              "version %" JSON_INTEGER_FORMAT
                              " (this herald reads %" JSON_INTEGER_FORMAT ")",
                              json_integer_value(v), version);
    else if ((unknown = fleetjson_unknown(o, members, n)) != NULL)
        rc =
            fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "unknown member \"%.32s\"", unknown);
    if (rc != 0) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}
