/* From generated tokens to an answer a verifier can score. */
#ifndef EXITRL_COMPLETION_H
#define EXITRL_COMPLETION_H

/* Copies the answer bytes of a completion gen[0..n) into buf[cap] (NUL-terminated): the tokens
 * before the EOS. Returns the length, or -1 when the completion is malformed: it never reached EOS
 * (cut at the length cap), holds a special token before EOS, or does not fit cap - 1 bytes. */
int completion_answer(const int *gen, int n, int hit_eos, char *buf, int cap);
/* Copies the raw attempt of a completion gen[0..n), the bytes before its first special token (EOS
 * included), into buf: at most cap bytes, no NUL added. Returns the number copied. */
int completion_raw(const int *gen, int n, char *buf, int cap);
#endif
