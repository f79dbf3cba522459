/* A GPU-less check of the cuDNN attention graphs (kernels/cuda/attention_cudnn.cu, built with the
 * helpers of kernels/cuda/cudnn_graph.cu; both are compiled into this program): cuDNN 9.8+ can plan
 * for a device described in a JSON file (its "deviceless ahead-of-time" path). For each shape of
 * the tests and benchmarks, forward and backward, this builds the file's own graph, finalizes it,
 * asks heuristics modes A and FALLBACK for engine configurations for that device and finalizes an
 * execution plan from each until one succeeds. Without a GPU driver (the toolkit's stub libcuda)
 * the plan stops when cuDNN loads the compiled kernels; reaching that step means cuDNN accepted the
 * graph and compiled kernels for it. Build and run: tools/cudnn_aot/run.sh [DEVICE_JSON].
 * Exit: 0 when every graph finalizes and gets at least one engine configuration, else 1. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cudnn_graph.cu"
#include "attention_cudnn.cu"

/* The backend functions those files call; the check reaches none of them. */
extern "C" void cuda_fatal(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cudnn_aot: %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}
extern "C" void *cuda_scratch(cuda_ctx *, cuda_scratch_slot, size_t) { return NULL; }
extern "C" void cuda_after_launch(cuda_ctx *, const char *, const char *, int) {}

static const char *last_error(void) {
    static char text[1024];
    text[0] = 0;
    cudnnGetLastErrorString(text, sizeof text);
    return text;
}

/* Heuristics for graph g on device dp in one mode; tries the plans. Returns the configurations offered. */
static int64_t try_mode(cudnnBackendDescriptor_t g, cudnnBackendDescriptor_t dp, cudnnBackendHeurMode_t mode) {
    cudnnBackendDescriptor_t heur;
    cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur);
    cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g);
    cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &dp);
    int64_t n = 0, got = 0;
    cudnnStatus_t st = cudnnBackendFinalize(heur);
    if (st == CUDNN_STATUS_SUCCESS)
        cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL);
    else
        printf("    heuristics: %s %s\n", cudnnGetErrorString(st), last_error());
    cudnnBackendDescriptor_t cfgs[16];
    if (n > 16) n = 16;
    for (int64_t i = 0; i < n; i++) cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i]);
    if (n) cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, cfgs);
    printf("    mode %s: %lld configurations\n", mode == CUDNN_HEUR_MODE_A ? "A" : "FALLBACK", (long long)got);
    for (int64_t i = 0; i < got; i++) {
        cudnnBackendDescriptor_t plan;
        cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan);
        cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &dp);
        cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                 &cfgs[i]);
        st = cudnnBackendFinalize(plan);
        printf("      configuration %lld: plan %s%s%.240s\n", (long long)i + 1, cudnnGetErrorString(st),
               st ? ": " : "", st ? last_error() : "");
        cudnnBackendDestroyDescriptor(plan);
        if (st == CUDNN_STATUS_SUCCESS) break;
    }
    for (int64_t i = 0; i < n; i++) cudnnBackendDestroyDescriptor(cfgs[i]);
    cudnnBackendDestroyDescriptor(heur);
    return got;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "h100.json";
    FILE *f = fopen(path, "rb");
    static char json[65536];
    size_t len = f ? fread(json, 1, sizeof json - 1, f) : 0;
    if (!f || len == 0) {
        fprintf(stderr, "cudnn_aot: cannot read the device description %s\n", path);
        return 2;
    }
    fclose(f);
    json[len] = 0;
    cudnnBackendDescriptor_t dp;
    cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &dp);
    cudnnBackendSetAttribute(dp, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, (int64_t)len + 1, json);
    cudnnStatus_t st = cudnnBackendFinalize(dp);
    printf("cuDNN %zu, device %s: %s %s\n", cudnnGetVersion(), path, cudnnGetErrorString(st), last_error());
    if (st) return 1;

    /* (B, T, C, NH): the test_gpu_ops attention cases and the benchmark's gpt2-124m shape */
    const int shapes[][4] = {{1, 128, 64, 1},  {2, 37, 96, 3},   {1, 130, 64, 4},   {2, 200, 256, 4},
                             {1, 70, 256, 2},  {2, 1024, 768, 12}, {16, 1024, 768, 12}};
    int bad = 0;
    for (const auto &s : shapes)
        for (int backward = 0; backward <= 1; backward++) {
            plan_key key = make_key(backward, s[0], s[1], s[2], s[3]);
            att_plan *p = (att_plan *)calloc(1, sizeof *p);
            p->key = key;
            builder b;
            builder_init(&b, &p->c, NULL, backward ? "backward" : "forward", UID_FIRST_VIRTUAL);
            if (backward)
                build_backward(&b, &key);
            else
                build_forward(&b, &key);
            printf("%s B=%d T=%d C=%d NH=%d:\n", b.graph, s[0], s[1], s[2], s[3]);
            if (failed(&b)) {
                printf("    build: %s\n", b.msg);
                bad = 1;
                plan_free(p);
                continue;
            }
            cudnnBackendDescriptor_t g;
            cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &g);
            cudnnBackendSetAttribute(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, b.nops, b.ops);
            st = cudnnBackendFinalize(g);
            if (st) {
                printf("    graph: %s %s\n", cudnnGetErrorString(st), last_error());
                bad = 1;
            } else if (try_mode(g, dp, CUDNN_HEUR_MODE_A) + try_mode(g, dp, CUDNN_HEUR_MODE_FALLBACK) == 0) {
                bad = 1;
            }
            cudnnBackendDestroyDescriptor(g);
            plan_free(p);
        }
    cudnnBackendDestroyDescriptor(dp);
    printf("cudnn_aot: %s\n", bad ? "a graph was refused (above)" : "every graph finalized and got engines");
    return bad;
}
