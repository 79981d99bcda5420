/*
 * conn.c's h2 preface detection and tls.c's context and memory-BIO engine,
 * driven without sockets: a client SSL talks to tls_conn_t through buffers.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conn.h"
#include "herald/error.h"
#include "tls.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void test_preface(void)
{
    const uint8_t *p = (const uint8_t *)preface;
    CHECK(conn_preface_match(p, 24) == CONN_PREFACE_YES);
    for (size_t n = 1; n < 24; n++)
        CHECK(conn_preface_match(p, n) == CONN_PREFACE_PARTIAL);
    /* Bytes after the preface (the client's SETTINGS) don't matter. */
    uint8_t more[40];
    memcpy(more, preface, 24);
    memset(more + 24, 0, sizeof(more) - 24);
    CHECK(conn_preface_match(more, sizeof(more)) == CONN_PREFACE_YES);
    CHECK(conn_preface_match((const uint8_t *)"GET / HTTP/1.1\r\n", 16) == CONN_PREFACE_NO);
    CHECK(conn_preface_match((const uint8_t *)"P", 1) == CONN_PREFACE_PARTIAL);
    CHECK(conn_preface_match((const uint8_t *)"PRI * HTTP/1.1", 14) == CONN_PREFACE_NO);
    CHECK(conn_preface_match((const uint8_t *)"POST /", 6) == CONN_PREFACE_NO);
    /* An exactly-sized heap copy: an over-read would show under ASan. */
    for (size_t n = 1; n <= 24; n++) {
        uint8_t *h = malloc(n);
        memcpy(h, preface, n);
        CHECK(conn_preface_match(h, n) == (n == 24 ? CONN_PREFACE_YES : CONN_PREFACE_PARTIAL));
        free(h);
    }
}

/* A self-signed P-256 certificate and key written to dir/{cert,key}.pem. */
static void make_cert(const char *cert, const char *key)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    assert(pk != NULL);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_sign(x, pk, EVP_sha256());
    FILE *f = fopen(cert, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key, "w");
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

/* Move ciphertext server -> client BIO. */
static void server_to_client(tls_conn_t *t, BIO *client_in)
{
    uint8_t buf[16384];
    size_t n;
    while ((n = tls_conn_take(t, buf, sizeof(buf))) > 0)
        BIO_write(client_in, buf, (int)n);
}

static void client_to_server(BIO *client_out, tls_conn_t *t)
{
    uint8_t buf[16384];
    int n;
    while ((n = BIO_read(client_out, buf, sizeof(buf))) > 0)
        CHECK(tls_conn_feed(t, buf, (size_t)n) == 0);
}

static void test_tls(const char *dir)
{
    char cert[512], key[512], other_cert[512], other_key[512], err[2048];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(other_cert, sizeof(other_cert), "%s/cert2.pem", dir);
    snprintf(other_key, sizeof(other_key), "%s/key2.pem", dir);
    make_cert(cert, key);
    make_cert(other_cert, other_key);

    /* Errors name the file. */
    CHECK(tls_ctx_create("/nonexistent/c.pem", key, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent/c.pem") != NULL);
    CHECK(tls_ctx_create(cert, "/nonexistent/k.pem", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent/k.pem") != NULL);
    CHECK(tls_ctx_create(cert, other_key, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "does not match") != NULL && strstr(err, other_key) != NULL);

    SSL_CTX *ctx = tls_ctx_create(cert, key, err, sizeof(err));
    CHECK(ctx != NULL);
    if (ctx == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }

    const char *alpns[] = {"\x02h2\x08http/1.1", "\x08http/1.1", ""};
    const char *want[] = {"h2", "http/1.1", NULL};
    for (int k = 0; k < 3; k++) {
        SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
        SSL *cl = SSL_new(cctx);
        BIO *cin = BIO_new(BIO_s_mem()), *cout = BIO_new(BIO_s_mem());
        SSL_set_bio(cl, cin, cout);
        SSL_set_connect_state(cl);
        if (alpns[k][0] != '\0')
            SSL_set_alpn_protos(cl, (const unsigned char *)alpns[k], strlen(alpns[k]));
        tls_conn_t *t = tls_conn_create(ctx);
        uint8_t plain[1024];
        for (int i = 0; i < 10 && !(tls_conn_handshake_done(t) && SSL_is_init_finished(cl)); i++) {
            SSL_do_handshake(cl);
            client_to_server(cout, t);
            CHECK(tls_conn_read(t, plain, sizeof(plain)) == 0);
            server_to_client(t, cin);
        }
        CHECK(tls_conn_handshake_done(t));
        size_t alen = 0;
        const char *alpn = tls_conn_alpn(t, &alen);
        if (want[k] == NULL)
            CHECK(alpn == NULL);
        else
            CHECK(alpn != NULL && alen == strlen(want[k]) && memcmp(alpn, want[k], alen) == 0);

        /* Client -> server application data. */
        CHECK(SSL_write(cl, "hello", 5) == 5);
        client_to_server(cout, t);
        int n = tls_conn_read(t, plain, sizeof(plain));
        CHECK(n == 5 && memcmp(plain, "hello", 5) == 0);

        /* Client -> server, a large upload fed in ragged pieces (records
         * split across feeds) and read back in small slices, so ciphertext
         * waits in the engine between feeds and the reads drain it. */
        {
            size_t up = 100000;
            uint8_t *src = malloc(up), *dst = malloc(up);
            for (size_t i = 0; i < up; i++)
                src[i] = (uint8_t)(i * 13 + 1);
            CHECK(SSL_write(cl, src, (int)up) == (int)up);
            uint8_t cbuf[1000];
            size_t got_up = 0;
            int cn;
            int pr = 1;
            while ((cn = BIO_read(cout, cbuf, 777)) > 0 || pr > 0) {
                if (cn > 0)
                    CHECK(tls_conn_feed(t, cbuf, (size_t)cn) == 0);
                /* one slice per feed: whole records stay unread in between */
                pr = tls_conn_read(t, plain, 300);
                CHECK(pr >= 0 && got_up + (size_t)(pr > 0 ? pr : 0) <= up);
                if (pr < 0 || got_up + (size_t)(pr > 0 ? pr : 0) > up)
                    break;
                memcpy(dst + got_up, plain, (size_t)pr);
                got_up += (size_t)pr;
            }
            CHECK(got_up == up && memcmp(src, dst, up) == 0);
            free(src);
            free(dst);
        }

        /* Server -> client, a large body encrypted in one go. */
        size_t big = 200000;
        uint8_t *body = malloc(big);
        for (size_t i = 0; i < big; i++)
            body[i] = (uint8_t)(i * 7);
        CHECK(tls_conn_write(t, body, big) == 0);
        CHECK(tls_conn_pending(t) > big);
        server_to_client(t, cin);
        uint8_t *got = malloc(big);
        size_t have = 0;
        int r;
        while (have < big && (r = SSL_read(cl, got + have, (int)(big - have))) > 0)
            have += (size_t)r;
        CHECK(have == big && memcmp(got, body, big) == 0);
        free(body);
        free(got);

        /* close_notify from the client is seen as CLOSED; ours reaches the client. */
        SSL_shutdown(cl);
        client_to_server(cout, t);
        CHECK(tls_conn_read(t, plain, sizeof(plain)) == HERALD_EEOF);
        tls_conn_shutdown(t);
        CHECK(tls_conn_pending(t) > 0);

        tls_conn_destroy(t);
        SSL_free(cl);
        SSL_CTX_free(cctx);
    }

    /* Garbage instead of a ClientHello fails the handshake. */
    tls_conn_t *t = tls_conn_create(ctx);
    uint8_t junk[64];
    memset(junk, 'G', sizeof(junk));
    CHECK(tls_conn_feed(t, junk, sizeof(junk)) == 0);
    uint8_t plain[64];
    CHECK(tls_conn_read(t, plain, sizeof(plain)) == HERALD_EPROTO);
    tls_conn_destroy(t);
    tls_ctx_free(ctx);
}

int main(void)
{
    test_preface();
    char dir[] = "/tmp/herald-conn-test-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_tls(dir);
    const char *names[] = {"cert.pem", "key.pem", "cert2.pem", "key2.pem"};
    for (size_t i = 0; i < 4; i++) {
        char p[600];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    if (failures == 0)
        printf("conn_test: ok\n");
    return failures == 0 ? 0 : 1;
}
