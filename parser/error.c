#include "parser/error.h"

#include <string.h>

const char *herald_strerror(int code)
{
    switch (code) {
    case HERALD_EOK:
        return "ok";
    case HERALD_EPARSE:
        return "parse error";
    case HERALD_ETOOBIG:
        return "input too large";
    case HERALD_EINVAL:
        return "invalid value";
    case HERALD_EUNSUPPORTED:
        return "unsupported";
    case HERALD_ENOTFOUND:
        return "not found";
    case HERALD_ETRUNCATED:
        return "truncated input";
    case HERALD_ENOMEM:
        return "out of memory";
    case HERALD_EINTERNAL:
        return "internal error";
    default:
        break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}
