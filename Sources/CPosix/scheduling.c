#define _GNU_SOURCE
#include <sched.h>
#include "cposix.h"

int kg_set_batch_scheduling(void) {
    struct sched_param param = { .sched_priority = 0 };
    return sched_setscheduler(0, SCHED_BATCH, &param);
}
