/* rt_gemm_avx512.c — AVX-512 variants of the rt_gemm family (compiled with the avx512 flags).
 *
 * s8_gemm: tiles of up to 4 activation rows x 4 weight rows, 64 bytes of K per step, one
 * vpdpbusd (AVX-512 VNNI: u8 x s8, four products summed into each int32 lane, no saturation)
 * per tile element; the weight rows are the outer loop so that a tile of W stays in L1 while
 * every activation row passes over it (W is read from memory once). The function carries
 * target("avx512vnni") because the rest of this library is built without it; rt_gemm_ref.c hands
 * it out only on a CPU with VNNI. Results are exact integers, the same bits as _ref.
 * csr_mm: P == 1 (a vector) gathers 16 activations per step; P > 1 runs 64 columns at a time
 * with the row's nonzeros broadcast. cb_gemv: up to 32 codebook entries stay in two registers
 * and are looked up with vpermt2ps; larger codebooks are gathered. Float sums run in lanes, so
 * they differ from _ref within RT_F32_SUM_BOUND.
 */
#include "rt_gemm_int.h"

#include <immintrin.h>
#include <string.h>

#define VNNI __attribute__((target("avx512vnni")))

static inline __attribute__((always_inline)) VNNI void
s8_tile(const int MR, const int NR, size_t K, const uint8_t *x, size_t ldx, const int8_t *w,
        size_t ldw, const int32_t *wsum, int32_t *out, size_t ldo)
{
    __m512i acc[4][4];
    size_t k = 0;

    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            acc[i][j] = _mm512_setzero_si512();
        }
    }
    for (; k + 64 <= K; k += 64) {
        __m512i wv[4];
        for (int j = 0; j < NR; j++) {
            wv[j] = _mm512_loadu_si512((const void *)(w + j * ldw + k));
        }
        for (int i = 0; i < MR; i++) {
            const __m512i xv = _mm512_loadu_si512((const void *)(x + i * ldx + k));
            for (int j = 0; j < NR; j++) {
                acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv, wv[j]);
            }
        }
    }
    if (k < K) {
        /* masked bytes load as 0 and add nothing; wsum covers exactly k < K */
        const __mmask64 m = _cvtu64_mask64(~0ull >> (64 - (K - k)));
        __m512i wv[4];
        for (int j = 0; j < NR; j++) {
            wv[j] = _mm512_maskz_loadu_epi8(m, w + j * ldw + k);
        }
        for (int i = 0; i < MR; i++) {
            const __m512i xv = _mm512_maskz_loadu_epi8(m, x + i * ldx + k);
            for (int j = 0; j < NR; j++) {
                acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv, wv[j]);
            }
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            out[i * ldo + j] = _mm512_reduce_add_epi32(acc[i][j]) - 128 * wsum[j];
        }
    }
}

VNNI void mp_kern_s8_gemm_avx512(size_t M, size_t N, size_t K, const uint8_t *xu, size_t ldx,
                                 const int8_t *w, size_t ldw, const int32_t *wsum, int32_t *out,
                                 size_t ldo)
{
    for (size_t n = 0; n < N; n += 4) {
        const size_t nr = N - n < 4 ? N - n : 4;
        for (size_t m = 0; m < M; m += 4) {
            const size_t mr = M - m < 4 ? M - m : 4;
            const uint8_t *x = xu + m * ldx;
            const int8_t *wr = w + n * ldw;
            int32_t *o = out + m * ldo + n;
#define S8_CASE(a, b)                                                                              \
    case (a)*8 + (b):                                                                              \
        s8_tile(a, b, K, x, ldx, wr, ldw, wsum + n, o, ldo);                                       \
        break;
#define S8_ROW(a) S8_CASE(a, 1) S8_CASE(a, 2) S8_CASE(a, 3) S8_CASE(a, 4)
            switch (mr * 8 + nr) {
                S8_ROW(1)
                S8_ROW(2)
                S8_ROW(3)
                S8_ROW(4)
            default:
                break;
            }
#undef S8_ROW
#undef S8_CASE
        }
    }
}

void mp_kern_csr_mm_f32_avx512(size_t N, size_t P, const int32_t *rowptr, const int32_t *col,
                               const float *val, const float *b, size_t ldb, float *out,
                               size_t ldo)
{
    if (P == 1 && ldb == 1) {
        for (size_t n = 0; n < N; n++) {
            __m512 acc = _mm512_setzero_ps();
            int32_t j = rowptr[n];
            const int32_t end = rowptr[n + 1];
            for (; j + 16 <= end; j += 16) {
                const __m512i ix = _mm512_loadu_si512((const void *)(col + j));
                const __m512 g = _mm512_i32gather_ps(ix, b, 4);
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(val + j), g, acc);
            }
            if (j < end) {
                const __mmask16 m = (__mmask16)((1u << (end - j)) - 1);
                const __m512i ix = _mm512_maskz_loadu_epi32(m, col + j);
                const __m512 g = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, ix, b, 4);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, val + j), g, acc);
            }
            out[n * ldo] = _mm512_reduce_add_ps(acc);
        }
        return;
    }
    for (size_t n = 0; n < N; n++) {
        for (size_t p = 0; p < P; p += 64) {
            const size_t np = P - p < 64 ? P - p : 64;
            __mmask16 mk[4];
            __m512 acc[4];
            for (int q = 0; q < 4; q++) {
                const size_t lo = (size_t)q * 16;
                const size_t c = np > lo ? (np - lo > 16 ? 16 : np - lo) : 0;
                mk[q] = (__mmask16)((1u << c) - 1);
                acc[q] = _mm512_setzero_ps();
            }
            for (int32_t j = rowptr[n]; j < rowptr[n + 1]; j++) {
                const __m512 v = _mm512_set1_ps(val[j]);
                const float *row = b + (size_t)col[j] * ldb + p;
                for (int q = 0; q < 4; q++) {
                    if (mk[q]) {
                        acc[q] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(mk[q], row + 16 * q),
                                                 acc[q]);
                    }
                }
            }
            for (int q = 0; q < 4; q++) {
                if (mk[q]) {
                    _mm512_mask_storeu_ps(out + n * ldo + p + 16 * q, mk[q], acc[q]);
                }
            }
        }
    }
}

void mp_kern_cb_gemv_f32_avx512(size_t N, size_t K, const float *x, const uint8_t *idx,
                                size_t ldi, const float *cb, int n_cb, float *y)
{
    float tab[32] = {0};
    memcpy(tab, cb, (size_t)(n_cb < 32 ? n_cb : 32) * sizeof *tab);
    const __m512 t0 = _mm512_loadu_ps(tab), t1 = _mm512_loadu_ps(tab + 16);

    for (size_t n = 0; n < N; n++) {
        const uint8_t *row = idx + n * ldi;
        __m512 acc = _mm512_setzero_ps();
        size_t k = 0;
        for (; k + 16 <= K; k += 16) {
            const __m512i ix = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(row + k)));
            __m512 wv;
            if (n_cb <= 32) {
                wv = _mm512_permutex2var_ps(t0, ix, t1);
            } else {
                wv = _mm512_i32gather_ps(ix, cb, 4);
            }
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), wv, acc);
        }
        float s = _mm512_reduce_add_ps(acc);
        for (; k < K; k++) {
            s += x[k] * cb[row[k]];
        }
        y[n] = s;
    }
}


/* dw_plane: 16 outputs of a row per step, all taps added before one store, the taps broadcast
 * once per plane (up to 7x7). Stride 1 loads each tap's 16 inputs; stride 2 takes the even
 * lanes of two loads (vpermt2ps). The last step of a row is masked to the inputs _ref reads, so
 * nothing past them is touched. Other strides and larger kernels run as _ref. Multiply then add,
 * as _ref, for the same bits. */
#define DW_MAX_TAPS 49
void mp_kern_dw_plane_f32_avx512(const mp_kern_dw_geom_t *g, const float *x, const float *w,
                                 float bias, float *y)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28,
                                           30);
    const size_t taps = g->kh * g->kw;
    __m512 wv[DW_MAX_TAPS];

    if ((g->sw != 1 && g->sw != 2) || taps > DW_MAX_TAPS) {
        mp_kern_dw_plane_f32_ref(g, x, w, bias, y);
        return;
    }
    for (size_t t = 0; t < taps; t++) {
        wv[t] = _mm512_set1_ps(w[t]);
    }
    for (size_t r = 0; r < g->oh; r++) {
        for (size_t i = 0; i < g->ow; i += 16) {
            const size_t cnt = g->ow - i < 16 ? g->ow - i : 16;
            const size_t len = (cnt - 1) * g->sw + 1; /* inputs read per tap */
            const __mmask16 m = (__mmask16)((1u << cnt) - 1);
            const __mmask16 m0 = (__mmask16)(len >= 16 ? 0xffffu : (1u << len) - 1);
            const __mmask16 m1 = (__mmask16)(len > 16 ? (1u << (len - 16)) - 1 : 0);
            __m512 acc = _mm512_set1_ps(bias);
            for (size_t a = 0; a < g->kh; a++) {
                const float *xr = x + (r * g->sh + a * g->dh) * g->ldx + i * g->sw;
                for (size_t b = 0; b < g->kw; b++) {
                    const float *xk = xr + b * g->dw;
                    __m512 xv;
                    if (g->sw == 1) {
                        xv = _mm512_maskz_loadu_ps(m, xk);
                    } else {
                        xv = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m0, xk), even,
                                                    _mm512_maskz_loadu_ps(m1, xk + 16));
                    }
                    acc = _mm512_add_ps(acc, _mm512_mul_ps(wv[a * g->kw + b], xv));
                }
            }
            _mm512_mask_storeu_ps(y + r * g->ow + i, m, acc);
        }
    }
}

/* wx_bias: a block of 32 columns of x is first copied for up to WX_KC rows into a dense buffer
 * (x's rows are often 2^n floats apart, which would put every row in the same L1 set), then
 * tiles of up to 6 weight rows run over it: 12 accumulators, each k one pair of loads and one
 * broadcast per weight row. Past the first WX_KC rows the accumulators start from out. The last
 * block's loads and stores are masked to the P columns. */
#define WX_KC 128
static inline __attribute__((always_inline)) void
wx_tile(const int MR, size_t K, const float *w, size_t ldw, const float *xb, const float *bias,
        int first, float *out, size_t ldo, __mmask16 m0, __mmask16 m1)
{
    __m512 acc[6][2];

    _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
        if (first) {
            acc[i][0] = acc[i][1] = _mm512_set1_ps(bias ? bias[i] : 0.0f);
        } else {
            acc[i][0] = _mm512_maskz_loadu_ps(m0, out + (size_t)i * ldo);
            acc[i][1] = _mm512_maskz_loadu_ps(m1, out + (size_t)i * ldo + 16);
        }
    }
    for (size_t k = 0; k < K; k++) {
        const __m512 x0 = _mm512_load_ps(xb + 32 * k);
        const __m512 x1 = _mm512_load_ps(xb + 32 * k + 16);
        _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
            const __m512 wb = _mm512_set1_ps(w[(size_t)i * ldw + k]);
            acc[i][0] = _mm512_fmadd_ps(wb, x0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(wb, x1, acc[i][1]);
        }
    }
    _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
        _mm512_mask_storeu_ps(out + (size_t)i * ldo, m0, acc[i][0]);
        _mm512_mask_storeu_ps(out + (size_t)i * ldo + 16, m1, acc[i][1]);
    }
}

void mp_kern_wx_bias_f32_avx512(size_t M, size_t P, size_t K, const float *w, size_t ldw,
                                const float *x, size_t ldx, const float *bias, float *out,
                                size_t ldo)
{
    _Alignas(64) float xb[WX_KC * 32];

    for (size_t p = 0; p < P; p += 32) {
        const size_t cnt = P - p < 32 ? P - p : 32;
        const __mmask16 m0 = (__mmask16)(cnt >= 16 ? 0xffffu : (1u << cnt) - 1);
        const __mmask16 m1 = (__mmask16)(cnt > 16 ? (1u << (cnt - 16)) - 1 : 0);
        size_t k0 = 0;
        do {
            const size_t kc = K - k0 < WX_KC ? K - k0 : WX_KC;
            for (size_t k = 0; k < kc; k++) {
                const float *xr = x + (k0 + k) * ldx + p;
                _mm512_store_ps(xb + 32 * k, _mm512_maskz_loadu_ps(m0, xr));
                _mm512_store_ps(xb + 32 * k + 16, _mm512_maskz_loadu_ps(m1, xr + 16));
            }
            for (size_t m = 0; m < M; m += 6) {
                const float *wm = w + m * ldw + k0, *bm = bias ? bias + m : NULL;
                float *om = out + m * ldo + p;
                const int first = k0 == 0;
                switch (M - m < 6 ? M - m : 6) {
                case 1: wx_tile(1, kc, wm, ldw, xb, bm, first, om, ldo, m0, m1); break;
                case 2: wx_tile(2, kc, wm, ldw, xb, bm, first, om, ldo, m0, m1); break;
                case 3: wx_tile(3, kc, wm, ldw, xb, bm, first, om, ldo, m0, m1); break;
                case 4: wx_tile(4, kc, wm, ldw, xb, bm, first, om, ldo, m0, m1); break;
                case 5: wx_tile(5, kc, wm, ldw, xb, bm, first, om, ldo, m0, m1); break;
                default: wx_tile(6, kc, wm, ldw, xb, bm, first, om, ldo, m0, m1); break;
                }
            }
            k0 += kc;
        } while (k0 < K);
    }
}

/* max2x2: row by row, 16 outputs per step; the even and odd lanes of each row's 32 inputs
 * (vpermt2ps), then _ref's steps as compare masks and blends (v > acc ordered, or v
 * unordered). With relu, each input is first max(v, +0) (maxps returns its second operand, +0,
 * for NaN and for -0, as v > 0 ? v : 0 does). The last step's loads and store are masked to
 * the 2n inputs and n outputs. */
static inline __m512 max_nan16(__m512 acc, __m512 v)
{
    const __mmask16 take = _mm512_cmp_ps_mask(v, acc, _CMP_GT_OQ) |
                           _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(take, acc, v);
}

void mp_kern_max2x2_f32_avx512(size_t rows, size_t n, const float *x, size_t ldx, int relu,
                               float *y)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28,
                                           30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29,
                                          31);
    const __m512 zero = _mm512_setzero_ps();

    for (size_t r = 0; r < rows; r++) {
        const float *x0 = x + 2 * r * ldx, *x1 = x0 + ldx;
        float *yr = y + r * n;
        for (size_t i = 0; i < n; i += 16) {
            const size_t cnt = n - i < 16 ? n - i : 16, len = 2 * cnt;
            const __mmask16 m = (__mmask16)((1u << cnt) - 1);
            const __mmask16 m0 = (__mmask16)(len >= 16 ? 0xffffu : (1u << len) - 1);
            const __mmask16 m1 = (__mmask16)(len > 16 ? (1u << (len - 16)) - 1 : 0);
            __m512 a0 = _mm512_maskz_loadu_ps(m0, x0 + 2 * i);
            __m512 a1 = _mm512_maskz_loadu_ps(m1, x0 + 2 * i + 16);
            __m512 b0 = _mm512_maskz_loadu_ps(m0, x1 + 2 * i);
            __m512 b1 = _mm512_maskz_loadu_ps(m1, x1 + 2 * i + 16);
            __m512 acc;
            if (relu) {
                /* no NaN and no -0 is left: the running maximum is maxps */
                a0 = _mm512_max_ps(a0, zero);
                a1 = _mm512_max_ps(a1, zero);
                b0 = _mm512_max_ps(b0, zero);
                b1 = _mm512_max_ps(b1, zero);
                acc = _mm512_max_ps(_mm512_permutex2var_ps(a0, even, a1),
                                    _mm512_permutex2var_ps(a0, odd, a1));
                acc = _mm512_max_ps(acc, _mm512_permutex2var_ps(b0, even, b1));
                acc = _mm512_max_ps(acc, _mm512_permutex2var_ps(b0, odd, b1));
            } else {
                acc = _mm512_permutex2var_ps(a0, even, a1);
                acc = max_nan16(acc, _mm512_permutex2var_ps(a0, odd, a1));
                acc = max_nan16(acc, _mm512_permutex2var_ps(b0, even, b1));
                acc = max_nan16(acc, _mm512_permutex2var_ps(b0, odd, b1));
            }
            _mm512_mask_storeu_ps(yr + i, m, acc);
        }
    }
}

/* stride2: 16 outputs per step, the even lanes of 32 inputs (vpermt2ps); the last step's loads
 * are masked to the 2n - 1 inputs read and its store to the n outputs. */
void mp_kern_stride2_f32_avx512(size_t n, const float *x, float *y)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28,
                                           30);

    for (size_t i = 0; i < n; i += 16) {
        const size_t cnt = n - i < 16 ? n - i : 16, len = 2 * cnt - 1;
        const __mmask16 m = (__mmask16)((1u << cnt) - 1);
        const __mmask16 m0 = (__mmask16)(len >= 16 ? 0xffffu : (1u << len) - 1);
        const __mmask16 m1 = (__mmask16)(len > 16 ? (1u << (len - 16)) - 1 : 0);
        const __m512 a = _mm512_maskz_loadu_ps(m0, x + 2 * i);
        const __m512 b = _mm512_maskz_loadu_ps(m1, x + 2 * i + 16);
        _mm512_mask_storeu_ps(y + i, m, _mm512_permutex2var_ps(a, even, b));
    }
}
