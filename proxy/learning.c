/* Filled by the learn/deliver issue: see learning.h. */
#include "proxy/learning.h"

void learning_on_request(exchange_t *ex)
{
    (void)ex;
}
void learning_on_response_head(exchange_t *ex, bool final)
{
    (void)ex, (void)final;
}
void learning_on_response_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    (void)ex, (void)data, (void)len;
}
void learning_on_response_end(exchange_t *ex, bool ok)
{
    (void)ex, (void)ok;
}
void learning_on_free(exchange_t *ex)
{
    (void)ex;
}
