/* rt_gemm_ref.c — the reference kernels of the rt_gemm family (the specification) and its
 * tables.
 *
 * Plain C11, one term at a time in index order; see rt_gemm_int.h for the contracts. The tables
 * live here, in the one file of the family built without ISA flags; a table is handed out only
 * for an ISA dispatch.c says this CPU supports. The avx512 table takes its s8_gemm from the
 * AVX2 file when the CPU lacks AVX-512 VNNI, so vpdpbusd is never reached without it.
 */
#include "rt_gemm_int.h"

#include "kernels_int.h"

#include <pthread.h>
#include <string.h>

void mp_kern_s8_gemm_ref(size_t M, size_t N, size_t K, const uint8_t *xu, size_t ldx,
                         const int8_t *w, size_t ldw, const int32_t *wsum, int32_t *out,
                         size_t ldo)
{
    (void)wsum;
    for (size_t m = 0; m < M; m++) {
        for (size_t n = 0; n < N; n++) {
            int32_t acc = 0;
            for (size_t k = 0; k < K; k++) {
                acc += ((int32_t)xu[m * ldx + k] - 128) * (int32_t)w[n * ldw + k];
            }
            out[m * ldo + n] = acc;
        }
    }
}

void mp_kern_csr_mm_f32_ref(size_t N, size_t P, const int32_t *rowptr, const int32_t *col,
                            const float *val, const float *b, size_t ldb, float *out, size_t ldo)
{
    for (size_t n = 0; n < N; n++) {
        for (size_t p = 0; p < P; p++) {
            float acc = 0.0f;
            for (int32_t j = rowptr[n]; j < rowptr[n + 1]; j++) {
                acc += val[j] * b[(size_t)col[j] * ldb + p];
            }
            out[n * ldo + p] = acc;
        }
    }
}

void mp_kern_cb_gemv_f32_ref(size_t N, size_t K, const float *x, const uint8_t *idx, size_t ldi,
                             const float *cb, int n_cb, float *y)
{
    (void)n_cb;
    for (size_t n = 0; n < N; n++) {
        float acc = 0.0f;
        for (size_t k = 0; k < K; k++) {
            acc += x[k] * cb[idx[n * ldi + k]];
        }
        y[n] = acc;
    }
}

int mp__kern_rt_has_vnni(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") != 0;
#else
    return 0;
#endif
}

void mp_kern_wx_bias_f32_ref(size_t M, size_t P, size_t K, const float *w, size_t ldw,
                             const float *x, size_t ldx, const float *bias, float *out, size_t ldo)
{
    for (size_t m = 0; m < M; m++) {
        for (size_t p = 0; p < P; p++) {
            float acc = bias ? bias[m] : 0.0f;
            for (size_t k = 0; k < K; k++) {
                acc += w[m * ldw + k] * x[k * ldx + p];
            }
            out[m * ldo + p] = acc;
        }
    }
}

void mp_kern_dw_plane_f32_ref(const mp_kern_dw_geom_t *g, const float *x, const float *w,
                              float bias, float *y)
{
    for (size_t r = 0; r < g->oh; r++) {
        for (size_t i = 0; i < g->ow; i++) {
            float acc = bias;
            for (size_t a = 0; a < g->kh; a++) {
                const float *xr = x + (r * g->sh + a * g->dh) * g->ldx + i * g->sw;
                for (size_t b = 0; b < g->kw; b++) {
                    acc += w[a * g->kw + b] * xr[b * g->dw];
                }
            }
            y[r * g->ow + i] = acc;
        }
    }
}

static inline float max_nan(float acc, float v)
{
    return v > acc || v != v ? v : acc;
}

static inline float relu_if(int relu, float v)
{
    return relu ? (v > 0.0f ? v : 0.0f) : v;
}

/* One output row of max2x2 (the variants' tails too). */
void mp_kern_max2x2_row_ref(size_t n, const float *x0, const float *x1, int relu, float *y)
{
    for (size_t i = 0; i < n; i++) {
        float acc = relu_if(relu, x0[2 * i]);
        acc = max_nan(acc, relu_if(relu, x0[2 * i + 1]));
        acc = max_nan(acc, relu_if(relu, x1[2 * i]));
        y[i] = max_nan(acc, relu_if(relu, x1[2 * i + 1]));
    }
}

void mp_kern_max2x2_f32_ref(size_t rows, size_t n, const float *x, size_t ldx, int relu, float *y)
{
    for (size_t r = 0; r < rows; r++) {
        mp_kern_max2x2_row_ref(n, x + 2 * r * ldx, x + (2 * r + 1) * ldx, relu, y + r * n);
    }
}

void mp_kern_stride2_f32_ref(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = x[2 * i];
    }
}

#define TABLE(name, s8)                                                                            \
    {                                                                                              \
        .isa = #name, .s8_gemm = mp_kern_s8_gemm_##s8, .csr_mm = mp_kern_csr_mm_f32_##name,        \
        .cb_gemv = mp_kern_cb_gemv_f32_##name, .dw_plane = mp_kern_dw_plane_f32_##name,            \
        .wx_bias = mp_kern_wx_bias_f32_##name, .max2x2 = mp_kern_max2x2_f32_##name,                \
        .stride2 = mp_kern_stride2_f32_##name,                                                     \
    }

static mp_kern_rt_table_t tables[] = {TABLE(ref, ref), TABLE(avx2, avx2), TABLE(avx512, avx512)};
static pthread_once_t vnni_once = PTHREAD_ONCE_INIT;

static void check_vnni(void)
{
    if (!mp__kern_rt_has_vnni()) {
        tables[2].s8_gemm = mp_kern_s8_gemm_avx2;
    }
}

const mp_kern_rt_table_t *mp__kern_rt_for(const char *isa)
{
    pthread_once(&vnni_once, check_vnni);
    for (size_t i = 0; isa && i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (strcmp(tables[i].isa, isa) == 0) {
            return mp__kern_for(isa) ? &tables[i] : NULL;
        }
    }
    return NULL;
}

const mp_kern_rt_table_t *mp__kern_rt(void)
{
    const mp_kern_rt_table_t *t = mp__kern_rt_for(mp__kern()->isa);
    return t ? t : &tables[0];
}
