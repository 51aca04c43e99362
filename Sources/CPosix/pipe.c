#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "cposix.h"

int kg_pipe_nonblocking(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }
