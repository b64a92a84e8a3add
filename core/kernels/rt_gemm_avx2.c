/* rt_gemm_avx2.c — AVX2 variants of the rt_gemm family (compiled with -mavx2 -mfma).
 *
 * s8_gemm: bytes widened to 16 bits and multiplied pairwise into int32 with vpmaddwd, which is
 * exact for every s8 x s8 product (vpmaddubsw would saturate at 2 x 255 x 127); tiles of up to
 * 2 activation rows x 4 weight rows, weight rows outermost; the K tail is summed in scalar code.
 * Exact integers: the same bits as _ref (so it also serves the avx512 table without VNNI).
 * csr_mm and cb_gemv: as the AVX-512 file with 8 lanes (codebooks of up to 8 entries are one
 * register and vpermps; larger ones are gathered). Float sums differ from _ref within
 * RT_F32_SUM_BOUND.
 */
#include "rt_gemm_int.h"

#include <immintrin.h>
#include <string.h>

static inline int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) void
s8_tile(const int MR, const int NR, size_t K, const uint8_t *x, size_t ldx, const int8_t *w,
        size_t ldw, int32_t *out, size_t ldo)
{
    const __m128i flip = _mm_set1_epi8((char)0x80);
    __m256i acc[2][4];
    size_t k = 0;

    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            acc[i][j] = _mm256_setzero_si256();
        }
    }
    for (; k + 16 <= K; k += 16) {
        __m256i wv[4];
        for (int j = 0; j < NR; j++) {
            wv[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + j * ldw + k)));
        }
        for (int i = 0; i < MR; i++) {
            /* xu ^ 0x80 is xu - 128 as a signed byte */
            const __m256i xv = _mm256_cvtepi8_epi16(
                _mm_xor_si128(_mm_loadu_si128((const __m128i *)(x + i * ldx + k)), flip));
            for (int j = 0; j < NR; j++) {
                acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(xv, wv[j]));
            }
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            int32_t s = hsum_epi32(acc[i][j]);
            for (size_t t = k; t < K; t++) {
                s += ((int32_t)x[i * ldx + t] - 128) * (int32_t)w[j * ldw + t];
            }
            out[i * ldo + j] = s;
        }
    }
}

void mp_kern_s8_gemm_avx2(size_t M, size_t N, size_t K, const uint8_t *xu, size_t ldx,
                          const int8_t *w, size_t ldw, const int32_t *wsum, int32_t *out,
                          size_t ldo)
{
    (void)wsum;
    for (size_t n = 0; n < N; n += 4) {
        const size_t nr = N - n < 4 ? N - n : 4;
        for (size_t m = 0; m < M; m += 2) {
            const size_t mr = M - m < 2 ? M - m : 2;
            const uint8_t *x = xu + m * ldx;
            const int8_t *wr = w + n * ldw;
            int32_t *o = out + m * ldo + n;
#define S8_CASE(a, b)                                                                              \
    case (a)*8 + (b):                                                                              \
        s8_tile(a, b, K, x, ldx, wr, ldw, o, ldo);                                                 \
        break;
#define S8_ROW(a) S8_CASE(a, 1) S8_CASE(a, 2) S8_CASE(a, 3) S8_CASE(a, 4)
            switch (mr * 8 + nr) {
                S8_ROW(1)
                S8_ROW(2)
            default:
                break;
            }
#undef S8_ROW
#undef S8_CASE
        }
    }
}

void mp_kern_csr_mm_f32_avx2(size_t N, size_t P, const int32_t *rowptr, const int32_t *col,
                             const float *val, const float *b, size_t ldb, float *out, size_t ldo)
{
    if (P == 1 && ldb == 1) {
        for (size_t n = 0; n < N; n++) {
            __m256 acc = _mm256_setzero_ps();
            int32_t j = rowptr[n];
            const int32_t end = rowptr[n + 1];
            for (; j + 8 <= end; j += 8) {
                const __m256i ix = _mm256_loadu_si256((const __m256i *)(col + j));
                const __m256 g = _mm256_i32gather_ps(b, ix, 4);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(val + j), g, acc);
            }
            float s = hsum_ps(acc);
            for (; j < end; j++) {
                s += val[j] * b[col[j]];
            }
            out[n * ldo] = s;
        }
        return;
    }
    for (size_t n = 0; n < N; n++) {
        size_t p = 0;
        for (; p + 32 <= P; p += 32) {
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                             _mm256_setzero_ps()};
            for (int32_t j = rowptr[n]; j < rowptr[n + 1]; j++) {
                const __m256 v = _mm256_set1_ps(val[j]);
                const float *row = b + (size_t)col[j] * ldb + p;
                for (int q = 0; q < 4; q++) {
                    acc[q] = _mm256_fmadd_ps(v, _mm256_loadu_ps(row + 8 * q), acc[q]);
                }
            }
            for (int q = 0; q < 4; q++) {
                _mm256_storeu_ps(out + n * ldo + p + 8 * q, acc[q]);
            }
        }
        for (; p < P; p++) {
            float s = 0.0f;
            for (int32_t j = rowptr[n]; j < rowptr[n + 1]; j++) {
                s += val[j] * b[(size_t)col[j] * ldb + p];
            }
            out[n * ldo + p] = s;
        }
    }
}

void mp_kern_cb_gemv_f32_avx2(size_t N, size_t K, const float *x, const uint8_t *idx, size_t ldi,
                              const float *cb, int n_cb, float *y)
{
    float tab[8] = {0};
    memcpy(tab, cb, (size_t)(n_cb < 8 ? n_cb : 8) * sizeof *tab);
    const __m256 t0 = _mm256_loadu_ps(tab);

    for (size_t n = 0; n < N; n++) {
        const uint8_t *row = idx + n * ldi;
        __m256 acc = _mm256_setzero_ps();
        size_t k = 0;
        for (; k + 8 <= K; k += 8) {
            const __m256i ix = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + k)));
            const __m256 wv =
                n_cb <= 8 ? _mm256_permutevar8x32_ps(t0, ix) : _mm256_i32gather_ps(cb, ix, 4);
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), wv, acc);
        }
        float s = hsum_ps(acc);
        for (; k < K; k++) {
            s += x[k] * cb[row[k]];
        }
        y[n] = s;
    }
}


/* dw_plane: 8 outputs of a row per step at stride 1, all taps added before one store; the rest
 * of a row, other strides and larger kernels as _ref. Multiply then add, as _ref, for the same
 * bits. */
void mp_kern_dw_plane_f32_avx2(const mp_kern_dw_geom_t *g, const float *x, const float *w,
                               float bias, float *y)
{
    mp_kern_dw_geom_t tail = *g;

    if (g->sw != 1) {
        mp_kern_dw_plane_f32_ref(g, x, w, bias, y);
        return;
    }
    for (size_t r = 0; r < g->oh; r++) {
        size_t i = 0;
        for (; i + 8 <= g->ow; i += 8) {
            __m256 acc = _mm256_set1_ps(bias);
            for (size_t a = 0; a < g->kh; a++) {
                const float *xr = x + (r * g->sh + a * g->dh) * g->ldx + i;
                for (size_t b = 0; b < g->kw; b++) {
                    const __m256 xv = _mm256_loadu_ps(xr + b * g->dw);
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(w[a * g->kw + b]), xv));
                }
            }
            _mm256_storeu_ps(y + r * g->ow + i, acc);
        }
        if (i < g->ow) {
            /* the row's last columns: a one-row plane of ow - i outputs whose y is not dense
             * with the next row's, hence oh 1 */
            tail.oh = 1;
            tail.ow = g->ow - i;
            mp_kern_dw_plane_f32_ref(&tail, x + r * g->sh * g->ldx + i, w, bias,
                                     y + r * g->ow + i);
        }
    }
}

/* wx_bias: blocks of 16 columns of x against tiles of up to 4 weight rows (8 accumulators), as
 * the AVX-512 variant with 8 lanes; the last columns (fewer than 16) run as _ref. */
static inline __attribute__((always_inline)) void
wx_tile(const int MR, size_t K, const float *w, size_t ldw, const float *x, size_t ldx,
        const float *bias, float *out, size_t ldo)
{
    __m256 acc[4][2];

    _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
        acc[i][0] = acc[i][1] = _mm256_set1_ps(bias ? bias[i] : 0.0f);
    }
    for (size_t k = 0; k < K; k++) {
        const __m256 x0 = _mm256_loadu_ps(x + k * ldx);
        const __m256 x1 = _mm256_loadu_ps(x + k * ldx + 8);
        _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
            const __m256 wb = _mm256_set1_ps(w[(size_t)i * ldw + k]);
            acc[i][0] = _mm256_fmadd_ps(wb, x0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(wb, x1, acc[i][1]);
        }
    }
    _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(out + (size_t)i * ldo, acc[i][0]);
        _mm256_storeu_ps(out + (size_t)i * ldo + 8, acc[i][1]);
    }
}

void mp_kern_wx_bias_f32_avx2(size_t M, size_t P, size_t K, const float *w, size_t ldw,
                              const float *x, size_t ldx, const float *bias, float *out,
                              size_t ldo)
{
    size_t p = 0;

    for (; p + 16 <= P; p += 16) {
        for (size_t m = 0; m < M; m += 4) {
            const float *wm = w + m * ldw, *bm = bias ? bias + m : NULL;
            float *om = out + m * ldo + p;
            switch (M - m < 4 ? M - m : 4) {
            case 1: wx_tile(1, K, wm, ldw, x + p, ldx, bm, om, ldo); break;
            case 2: wx_tile(2, K, wm, ldw, x + p, ldx, bm, om, ldo); break;
            case 3: wx_tile(3, K, wm, ldw, x + p, ldx, bm, om, ldo); break;
            default: wx_tile(4, K, wm, ldw, x + p, ldx, bm, om, ldo); break;
            }
        }
    }
    if (p < P) {
        mp_kern_wx_bias_f32_ref(M, P - p, K, w, ldw, x + p, ldx, bias, out + p, ldo);
    }
}

/* max2x2: row by row, 8 outputs per step; the even and odd lanes of each row's 16 inputs
 * (shufps, then vpermpd to put the 128-bit halves in order), then _ref's steps as compares and
 * blends; with relu, each input is first max(v, +0) (maxps returns +0, its second operand, for
 * NaN and -0, as v > 0 ? v : 0 does), after which a plain maxps chain is exact. The last < 8
 * outputs of a row run as _ref. */
static inline __m256 max_nan8(__m256 acc, __m256 v)
{
    const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, acc, _CMP_GT_OQ),
                                     _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_blendv_ps(acc, v, take);
}

static inline void deinterleave8(const float *x, int relu, __m256 *ev, __m256 *od)
{
    __m256 lo = _mm256_loadu_ps(x), hi = _mm256_loadu_ps(x + 8);
    if (relu) {
        lo = _mm256_max_ps(lo, _mm256_setzero_ps());
        hi = _mm256_max_ps(hi, _mm256_setzero_ps());
    }
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))), 0xd8));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))), 0xd8));
}

void mp_kern_max2x2_f32_avx2(size_t rows, size_t n, const float *x, size_t ldx, int relu,
                             float *y)
{
    for (size_t r = 0; r < rows; r++) {
        const float *x0 = x + 2 * r * ldx, *x1 = x0 + ldx;
        float *yr = y + r * n;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 a_ev, a_od, b_ev, b_od, acc;
            deinterleave8(x0 + 2 * i, relu, &a_ev, &a_od);
            deinterleave8(x1 + 2 * i, relu, &b_ev, &b_od);
            if (relu) {
                acc = _mm256_max_ps(_mm256_max_ps(a_ev, a_od), _mm256_max_ps(b_ev, b_od));
            } else {
                acc = max_nan8(max_nan8(max_nan8(a_ev, a_od), b_ev), b_od);
            }
            _mm256_storeu_ps(yr + i, acc);
        }
        mp_kern_max2x2_row_ref(n - i, x0 + 2 * i, x1 + 2 * i, relu, yr + i);
    }
}

/* stride2: 8 outputs per step from 16 inputs (shufps, then vpermpd), while the step's last
 * input, x[2i + 15], is one _ref reads too (i + 8 < n); the rest as _ref. */
void mp_kern_stride2_f32_avx2(size_t n, const float *x, float *y)
{
    size_t i = 0;

    for (; i + 8 < n; i += 8) {
        __m256 ev, od;
        deinterleave8(x + 2 * i, 0, &ev, &od);
        _mm256_storeu_ps(y + i, ev);
    }
    mp_kern_stride2_f32_ref(n - i, x + 2 * i, y + i);
}
