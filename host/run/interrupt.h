/* SIGINT/SIGTERM handling for long runs: the first signal sets a flag that the training loop checks
 * at a step boundary (it then writes a checkpoint and exits); a second one exits at once, which is
 * still safe because checkpoints are written atomically. SIGXFSZ is ignored, so a file-size limit
 * is a failed write with a message, not a killed run. */
#ifndef EXITRL_INTERRUPT_H
#define EXITRL_INTERRUPT_H
void interrupt_install(void);
int interrupt_requested(void);
#endif
