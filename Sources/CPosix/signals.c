#include "cposix.h"
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

static volatile sig_atomic_t pipe_fd = -1;
static volatile sig_atomic_t stop_flag = 0;
static volatile sig_atomic_t worker_listen_fd = -1;
static volatile sig_atomic_t worker_null_fd = -1;

static void to_pipe(int signo) {
    int saved = errno;
    unsigned char byte = (unsigned char)signo;
    if (pipe_fd >= 0) { (void)write(pipe_fd, &byte, 1); }
    errno = saved;
}

int kg_signals_route_to_pipe(int pipe_write_fd, const int *signals, int count) {
    pipe_fd = pipe_write_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = to_pipe;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &sa, NULL) != 0) { return -1; }
    }
    return 0;
}

static void worker_stop(int signo) {
    (void)signo;
    int saved = errno;
    stop_flag = 1;
    if (worker_listen_fd >= 0 && worker_null_fd >= 0) {
        (void)dup2(worker_null_fd, worker_listen_fd);
    }
    errno = saved;
}

int kg_signals_worker_stop(int listen_fd, int null_fd) {
    worker_listen_fd = listen_fd;
    worker_null_fd = null_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = worker_stop;
    /* SA_RESTART: a request in progress goes on reading and writing (libfcgi takes EINTR
     * for an error and would cut it short). An idle worker still stops at once: its
     * restarted accept() meets /dev/null, dup2'd over the listening socket, and fails. */
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0) { return -1; }
    if (sigaction(SIGQUIT, &sa, NULL) != 0) { return -1; }
    return 0;
}

int kg_signals_stop_requested(void) { return stop_flag != 0; }

void kg_signals_reset(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) { continue; }
        (void)sigaction(s, &sa, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    pipe_fd = -1;
    stop_flag = 0;
}

int kg_set_parent_death_signal(int signo) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signo, 0, 0, 0);
}
