/* The baseline for scripts/bench: the smallest useful libfcgi responder. It forks N
 * workers on one unix socket, like keygate's pool, and answers every request with the
 * same JSON body keygate's /healthz sends. Its workers run like keygate's (prefork.h),
 * so the two are compared like for like. */
#include "prefork.h"

static void serve(int fd) {
    FCGX_Request *request = prefork_worker_request(fd);
    static const char reply[] =
        "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
    while (FCGX_Accept_r(request) >= 0) {
        FCGX_PutStr(reply, (int)sizeof reply - 1, request->out);
        prefork_finish(request);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s SOCKET WORKERS\n", argv[0]); return 2; }
    return prefork_run(argv[1], atoi(argv[2]), serve);
}
