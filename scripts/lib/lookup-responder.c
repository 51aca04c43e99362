/* The database baseline for scripts/bench: hello-responder.c plus one libpq lookup per
 * request, the least a responder that checks a key in PostgreSQL must do. Each worker
 * holds one connection straight to PostgreSQL, hashes X-API-Key with HMAC-SHA-256 under
 * the pepper, and runs keygate's own key lookup (the select list is passed in, so the
 * two read the same columns) as a statement prepared once; it answers 200 with the
 * key's id and name, or 401. Its workers run like keygate's (prefork.h). */
#include "prefork.h"
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

static unsigned char pepper[4096];
static size_t pepper_length;

static const char *conninfo;
static char sql[4096];

static void serve(int fd) {
    FCGX_Request *request = prefork_worker_request(fd);
    PGconn *db = PQconnectdb(conninfo);
    if (PQstatus(db) != CONNECTION_OK) { fprintf(stderr, "%s", PQerrorMessage(db)); exit(1); }
    PGresult *prepared = PQprepare(db, "lookup", sql, 1, NULL);
    if (PQresultStatus(prepared) != PGRES_COMMAND_OK) { fprintf(stderr, "%s", PQerrorMessage(db)); exit(1); }
    PQclear(prepared);
    static const char unauthorized[] = "{\"status\":401}";
    while (FCGX_Accept_r(request) >= 0) {
        const char *key = FCGX_GetParam("HTTP_X_API_KEY", request->envp);
        char body[256];
        int length = -1;
        if (key != NULL) {
            unsigned char hash[EVP_MAX_MD_SIZE];
            unsigned int hash_length = 0;
            HMAC(EVP_sha256(), pepper, (int)pepper_length, (const unsigned char *)key, strlen(key), hash, &hash_length);
            const char *values[1] = { (const char *)hash };
            int lengths[1] = { (int)hash_length }, formats[1] = { 1 };
            PGresult *result = PQexecPrepared(db, "lookup", 1, values, lengths, formats, 0);
            if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
                length = snprintf(body, sizeof body, "{\"id\":\"%s\",\"name\":\"%s\"}",
                                  PQgetvalue(result, 0, 0), PQgetvalue(result, 0, 1));
            }
            PQclear(result);
        }
        if (length < 0 || length >= (int)sizeof body) {
            FCGX_FPrintF(request->out, "Status: 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                         (int)sizeof unauthorized - 1, unauthorized);
        } else {
            FCGX_FPrintF(request->out, "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", length, body);
        }
        prefork_finish(request);
    }
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s SOCKET WORKERS CONNINFO PEPPER_FILE SELECT_LIST\n", argv[0]); return 2; }
    FILE *file = fopen(argv[4], "r");
    if (file == NULL) { perror(argv[4]); return 1; }
    pepper_length = fread(pepper, 1, sizeof pepper, file);
    fclose(file);
    /* keygate trims surrounding whitespace from the pepper file (a trailing newline). */
    while (pepper_length > 0 && memchr(" \t\r\n", pepper[pepper_length - 1], 4) != NULL) { pepper_length--; }
    size_t skip = 0;
    while (skip < pepper_length && memchr(" \t\r\n", pepper[skip], 4) != NULL) { skip++; }
    memmove(pepper, pepper + skip, pepper_length - skip);
    pepper_length -= skip;
    conninfo = argv[3];
    if (snprintf(sql, sizeof sql, "SELECT %s FROM api_keys WHERE key_hash = $1", argv[5]) >= (int)sizeof sql) { return 2; }
    return prefork_run(argv[1], atoi(argv[2]), serve);
}
