/* `exitrl export --format safetensors`: the weights as Hugging Face GPT-2 tensors.
 *
 * Names and layouts follow transformers' GPT2LMHeadModel: its Conv1D layers store weights as
 * [in, out], so our [out, in] matrices are transposed; the output head is tied to wte and not
 * written. vocab_size in config.json is the padded vocab (Vp); logits at ids >= vocab (265) belong
 * to padding rows and must be ignored.
 * Beside the weights it writes check.bin, exitrl's own logits for a fixed token sequence, so that
 * tests/ref/check_hf_export.py can compare the two implementations:
 *   int32 T, int32 V, int32 tokens[T], float32 logits[T * V]   (little-endian; first V columns) */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "run/setup.h"
#include "cli/commands.h"
#include "model/model_io.h"
#include "model/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: exitrl export --checkpoint FILE --out DIR [--format safetensors]\n\n"
               "Writes DIR/model.safetensors and DIR/config.json (GPT-2 format, loadable by\n"
               "transformers' GPT2LMHeadModel) and DIR/check.bin (exitrl's logits for a fixed token\n"
               "sequence, for tests/ref/check_hf_export.py).\n");
}

typedef struct {
    char name[64];
    size_t rows, cols; /* shape as written; cols = 0 for a vector */
    const float *src;  /* our tensor */
    int transpose;     /* write src[cols, rows] transposed */
} st_tensor;

static int write_floats(FILE *f, const st_tensor *t) {
    size_t n = t->cols ? t->rows * t->cols : t->rows;
    if (!t->transpose) return fwrite(t->src, sizeof(float), n, f) == n ? 0 : -1;
    float *row = malloc(t->cols * sizeof(float));
    if (!row) return -1;
    for (size_t r = 0; r < t->rows; r++) { /* out[r, c] = src[c, r] */
        for (size_t c = 0; c < t->cols; c++) row[c] = t->src[c * t->rows + r];
        if (fwrite(row, sizeof(float), t->cols, f) != t->cols) {
            free(row);
            return -1;
        }
    }
    free(row);
    return 0;
}

static int write_safetensors(const char *path, const st_tensor *ts, int n) {
    char *hdr = NULL;
    size_t hdr_len = 0;
    FILE *h = open_memstream(&hdr, &hdr_len);
    if (!h) return -1;
    fprintf(h, "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"exitrl\"}");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = (ts[i].cols ? ts[i].rows * ts[i].cols : ts[i].rows) * sizeof(float);
        if (ts[i].cols)
            fprintf(h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%zu,%zu],\"data_offsets\":[%zu,%zu]}", ts[i].name,
                    ts[i].rows, ts[i].cols, off, off + bytes);
        else
            fprintf(h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}", ts[i].name,
                    ts[i].rows, off, off + bytes);
        off += bytes;
    }
    fprintf(h, "}");
    /* Pad the header with spaces so the data starts 8-byte aligned, as the format recommends. */
    long len = ftell(h);
    while (len % 8) {
        fputc(' ', h);
        len++;
    }
    fclose(h);
    char tmp[720];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(hdr);
        return -1;
    }
    unsigned char n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (unsigned char)((uint64_t)hdr_len >> (8 * i));
    int bad = fwrite(n8, 1, 8, f) != 8 || fwrite(hdr, 1, hdr_len, f) != hdr_len;
    for (int i = 0; i < n && !bad; i++) bad = write_floats(f, &ts[i]);
    bad |= fclose(f) != 0;
    free(hdr);
    if (bad || rename(tmp, path)) {
        remove(tmp);
        return -1;
    }
    return 0;
}

static int write_config_json(const char *path, const gpt_config *c) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n"
            "  \"vocab_size\": %d,\n  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"n_embd\": %d,\n"
            "  \"n_layer\": %d,\n  \"n_head\": %d,\n  \"n_inner\": null,\n"
            "  \"activation_function\": \"gelu_new\",\n  \"layer_norm_epsilon\": 1e-05,\n"
            "  \"resid_pdrop\": 0.0,\n  \"embd_pdrop\": 0.0,\n  \"attn_pdrop\": 0.0,\n"
            "  \"tie_word_embeddings\": true,\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n"
            "  \"exitrl_real_vocab_size\": %d\n}\n",
            c->vocab_padded, c->max_seq, c->max_seq, c->d_model, c->n_layer, c->n_head, TOK_BOS, TOK_EOS,
            c->vocab);
    return fclose(f);
}

/* exitrl's logits for a fixed, printable token sequence, written for the independent check. */
static int write_check(const char *path, gpt_model *m) {
    const gpt_config *c = &m->cfg;
    int T = c->max_seq < 48 ? c->max_seq : 48;
    int tokens[48], targets[48];
    const char *text = "<request>12+7*3= <answer>33 and some more bytes";
    for (int t = 0; t < T; t++) {
        tokens[t] = t == 0 ? TOK_BOS : (unsigned char)text[(t - 1) % (int)strlen(text)];
        targets[t] = -1;
    }
    gpt_set_batch(m, tokens, targets, NULL, 1, T);
    gpt_forward(m, 1, T);
    float *logits = malloc(sizeof(float) * T * c->vocab_padded);
    if (!logits) return -1;
    m->backend->download(m->backend, logits, m->acts.logits, sizeof(float) * T * c->vocab_padded);
    FILE *f = fopen(path, "wb");
    int bad = !f;
    if (f) {
        int32_t hdr[2] = {T, c->vocab};
        bad |= fwrite(hdr, sizeof hdr, 1, f) != 1;
        bad |= fwrite(tokens, sizeof(int32_t), (size_t)T, f) != (size_t)T;
        for (int t = 0; t < T && !bad; t++)
            bad |= fwrite(logits + (size_t)t * c->vocab_padded, sizeof(float), (size_t)c->vocab, f) !=
                   (size_t)c->vocab;
        bad |= fclose(f) != 0;
    }
    free(logits);
    return bad ? -1 : 0;
}

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *format = "safetensors";
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        const char **dst = !strcmp(argv[i], "--checkpoint") ? &ckpt
                           : !strcmp(argv[i], "--out")      ? &out
                           : !strcmp(argv[i], "--format")   ? &format
                                                            : NULL;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "exitrl export: %s '%s'\n", dst ? "missing value for" : "unknown option", argv[i]);
            usage(stderr);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!ckpt || !out) {
        fprintf(stderr, "exitrl export: --checkpoint and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (strcmp(format, "safetensors")) {
        fprintf(stderr, "exitrl export: unknown format '%s' (supported: safetensors)\n", format);
        return 2;
    }
    char err[512];
    ckpt_reader r;
    gpt_config mc;
    if (ckpt_open(&r, ckpt, err, sizeof err) || model_read_config(&r, &mc, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        ckpt_close(&r);
        return 1;
    }
    exitrl_backend *be = backend_open("cpu", 0);
    gpt_model m;
    if (!be || gpt_create(&m, be, &mc, 1, mc.max_seq < 48 ? mc.max_seq : 48)) {
        ckpt_close(&r);
        if (be) be->destroy(be);
        return 1;
    }
    int rc = model_load(&r, &m, 0, err, sizeof err);
    ckpt_close(&r);
    if (rc) {
        fprintf(stderr, "exitrl: %s\n", err);
        gpt_destroy(&m);
        be->destroy(be);
        return 1;
    }
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "exitrl export: cannot create %s: %s\n", out, strerror(errno));
        gpt_destroy(&m);
        be->destroy(be);
        return 1;
    }

    const float *w = m.master;
    const size_t C = (size_t)mc.d_model, L = (size_t)mc.n_layer;
    st_tensor *ts = calloc(4 + 12 * L, sizeof *ts);
    int n = 0;
#define T_ADD(nm, r, c, src_, tr)                                                     \
    do {                                                                              \
        snprintf(ts[n].name, sizeof ts[n].name, "%s", nm);                            \
        ts[n].rows = (r), ts[n].cols = (c), ts[n].src = (src_), ts[n].transpose = tr; \
        n++;                                                                          \
    } while (0)
    T_ADD("transformer.wte.weight", (size_t)mc.vocab_padded, C, w + m.param_offsets[P_WTE], 0);
    T_ADD("transformer.wpe.weight", (size_t)mc.max_seq, C, w + m.param_offsets[P_WPE], 0);
    for (size_t l = 0; l < L; l++) {
        char nm[64];
#define LAYER(suffix, r, c, tensor, stride, tr)                                          \
    snprintf(nm, sizeof nm, "transformer.h.%zu.%s", l, suffix);                          \
    T_ADD(nm, r, c, w + m.param_offsets[tensor] + l * (stride), tr)
        LAYER("ln_1.weight", C, 0, P_LN1W, C, 0);
        LAYER("ln_1.bias", C, 0, P_LN1B, C, 0);
        LAYER("attn.c_attn.weight", C, 3 * C, P_QKVW, 3 * C * C, 1);
        LAYER("attn.c_attn.bias", 3 * C, 0, P_QKVB, 3 * C, 0);
        LAYER("attn.c_proj.weight", C, C, P_ATTPROJW, C * C, 1);
        LAYER("attn.c_proj.bias", C, 0, P_ATTPROJB, C, 0);
        LAYER("ln_2.weight", C, 0, P_LN2W, C, 0);
        LAYER("ln_2.bias", C, 0, P_LN2B, C, 0);
        LAYER("mlp.c_fc.weight", C, 4 * C, P_FCW, 4 * C * C, 1);
        LAYER("mlp.c_fc.bias", 4 * C, 0, P_FCB, 4 * C, 0);
        LAYER("mlp.c_proj.weight", 4 * C, C, P_FCPROJW, 4 * C * C, 1);
        LAYER("mlp.c_proj.bias", C, 0, P_FCPROJB, C, 0);
#undef LAYER
    }
    T_ADD("transformer.ln_f.weight", C, 0, w + m.param_offsets[P_LNFW], 0);
    T_ADD("transformer.ln_f.bias", C, 0, w + m.param_offsets[P_LNFB], 0);
#undef T_ADD

    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    rc = write_safetensors(path, ts, n);
    if (!rc) {
        snprintf(path, sizeof path, "%s/config.json", out);
        rc = write_config_json(path, &mc);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/check.bin", out);
        rc = write_check(path, &m);
    }
    if (rc) fprintf(stderr, "exitrl export: writing %s failed: %s\n", path, strerror(errno));
    else printf("exported %d tensors (%zu parameters) to %s\n", n, m.num_params, out);
    free(ts);
    gpt_destroy(&m);
    be->destroy(be);
    return rc ? 1 : 0;
}
