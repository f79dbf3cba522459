#define _POSIX_C_SOURCE 200809L
#include "run/interrupt.h"

#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t requested = 0;

static void on_signal(int sig) {
    if (requested) _exit(128 + sig);
    requested = 1;
    static const char msg[] = "\nexitrl: interrupt received, saving a checkpoint (again to quit now)\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
}

void interrupt_install(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A write past the file-size limit (ulimit -f) then fails with EFBIG, which the writer reports
     * with the path, instead of killing the run. */
    signal(SIGXFSZ, SIG_IGN);
}

int interrupt_requested(void) { return requested != 0; }
