/* What the bench's C responders share: a unix socket, N forked workers serving it the way
 * keygate's do (SCHED_BATCH, keygate's default worker_scheduling; the connection closed
 * without libfcgi's linger once stdin is read to its end), and a master that waits for
 * SIGTERM or SIGINT and takes the workers along. */
#ifndef KEYGATE_BENCH_PREFORK_H
#define KEYGATE_BENCH_PREFORK_H
#define _GNU_SOURCE
#include <fcgiapp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* In a worker: the scheduling policy and the request, allocated once on the heap
 * (libfcgi keeps pointers into it). */
static FCGX_Request *prefork_worker_request(int fd) {
    struct sched_param param = { .sched_priority = 0 };
    if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) { perror("sched_setscheduler"); }
    FCGX_Request *request = malloc(sizeof *request);
    if (request == NULL || FCGX_InitRequest(request, fd, 0) != 0) { exit(1); }
    return request;
}

/* Ends a request: at once when all of stdin was read, else with libfcgi's linger. */
static void prefork_finish(FCGX_Request *request) {
    if (FCGX_GetChar(request->in) == EOF) { FCGX_Detach(request); } else { request->detached = 0; }
    FCGX_Finish_r(request);
}

/* Opens the socket, forks `workers` processes running serve(fd), waits for a signal. */
static int prefork_run(const char *socket_path, int workers, void (*serve)(int fd)) {
    if (workers < 1 || workers > 256) { return 2; }
    if (FCGX_Init() != 0) { return 1; }
    unlink(socket_path);
    int fd = FCGX_OpenSocket(socket_path, 511);
    if (fd < 0) { perror("FCGX_OpenSocket"); return 1; }
    chmod(socket_path, 0666);
    pid_t children[256];
    int started = 0;
    for (; started < workers; started++) {
        pid_t child = fork();
        if (child == 0) { serve(fd); exit(0); }
        if (child < 0) { perror("fork"); break; }
        children[started] = child;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int received = 0;
    if (started == workers) { sigwait(&set, &received); }
    /* Only the children started here: a pid of -1 would signal every process we may. */
    for (int i = 0; i < started; i++) { kill(children[i], SIGKILL); }
    return started == workers ? 0 : 1;
}
#endif
