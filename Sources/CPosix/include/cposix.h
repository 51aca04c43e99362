#ifndef KEYGATE_CPOSIX_H
#define KEYGATE_CPOSIX_H
#include <sys/types.h>

// Signal handlers must be async-signal-safe; Swift cannot promise that, so they live
// here and do one thing each: write the signal number to a self-pipe (master), or set
// a flag and break the worker out of accept() (worker).

/// Master: every listed signal writes its number as one byte to `pipe_write_fd`.
int kg_signals_route_to_pipe(int pipe_write_fd, const int *signals, int count);

/// Worker: SIGTERM/SIGQUIT set the stop flag and replace `listen_fd` with `null_fd`
/// (dup2), so a worker blocked in accept(), or about to enter it, returns at once while
/// an in-flight request still completes. With SA_RESTART, so a read of a request body
/// in flight is not cut short (the dup2 is what ends a blocked accept()).
int kg_signals_worker_stop(int listen_fd, int null_fd);

/// Whether a worker stop signal has arrived.
int kg_signals_stop_requested(void);

/// Restores default dispositions and an empty mask (a forked child starts from this).
void kg_signals_reset(void);

/// prctl(PR_SET_PDEATHSIG): prctl is variadic and not visible through Glibc.
int kg_set_parent_death_signal(int signo);



/// sched_setscheduler(0, SCHED_BATCH): the constant needs _GNU_SOURCE.
int kg_set_batch_scheduling(void);

/// pipe2(O_NONBLOCK | O_CLOEXEC): pipe2 needs _GNU_SOURCE, which Swift's Glibc omits.
int kg_pipe_nonblocking(int fds[2]);
#endif
