/* The baseline for scripts/bench: the smallest useful libfcgi responder. It forks
 * N workers on one unix socket, like keygate's pool, and answers every request with
 * the same JSON body keygate's /healthz sends. It works like keygate's workers, so the
 * two are compared like for like: SCHED_BATCH (keygate's default worker_scheduling), and
 * once stdin is read to its end the connection is closed without libfcgi's linger. */
#define _GNU_SOURCE
#include <fcgiapp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void serve(int fd) {
    struct sched_param param = { .sched_priority = 0 };
    if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) { perror("sched_setscheduler"); }
    FCGX_Request *request = malloc(sizeof *request);
    if (request == NULL || FCGX_InitRequest(request, fd, 0) != 0) { exit(1); }
    static const char reply[] =
        "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
    while (FCGX_Accept_r(request) >= 0) {
        FCGX_PutStr(reply, (int)sizeof reply - 1, request->out);
        if (FCGX_GetChar(request->in) == EOF) { FCGX_Detach(request); } else { request->detached = 0; }
        FCGX_Finish_r(request);
    }
    exit(0);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s SOCKET WORKERS\n", argv[0]); return 2; }
    int workers = atoi(argv[2]);
    if (FCGX_Init() != 0) { return 1; }
    unlink(argv[1]);
    int fd = FCGX_OpenSocket(argv[1], 511);
    if (fd < 0) { perror("FCGX_OpenSocket"); return 1; }
    chmod(argv[1], 0666);
    pid_t children[256];
    if (workers < 1 || workers > 256) { return 2; }
    for (int i = 0; i < workers; i++) {
        children[i] = fork();
        if (children[i] == 0) { serve(fd); }
    }
    /* Exit (and take the workers along) when told to. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int received;
    sigwait(&set, &received);
    for (int i = 0; i < workers; i++) { kill(children[i], SIGKILL); }
    return 0;
}
