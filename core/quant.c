/* quant.c — quantization of weight matrices (int8, any width 2..8, binary, ternary), its
 * inverse, sub-byte packing, and the error figures.
 *
 * Symmetric int8 (mp__quant_i8_sym): one scale per row (per channel) or one for the whole
 * tensor: scale = absmax / 127 in float, q = round-half-even(w * (1/scale)) clamped to ±127, so
 * the largest magnitude maps to ±127 and every other weight lands within scale/2 of q * scale
 * (plus the rounding of w * (1/scale): at most 2^-23 |w| more). Two degenerate rows get scale 1
 * and q = 0: a row of zeros (so it dequantizes to exact zeros) and a row whose absmax is below
 * 127 * FLT_MIN (~1.5e-36), where absmax / 127 would be subnormal and 1/scale could overflow to
 * inf; such weights are zero to within float precision anyway, and every scale written is a
 * normal float. Non-finite weights are refused before any kernel quantizes.
 *
 * Any width (mp__quant_affine) follows the same rules per group of a row with qmax = 2^(bits-1)
 * - 1, so at 8 bits per channel it gives mp__quant_i8_sym's bits exactly. Asymmetric groups
 * span [min(lo, 0), max(hi, 0)], so 0 is always the exact code zero_point; their scale is
 * computed in double and rounded once to float because hi - lo of two finite floats may exceed
 * FLT_MAX (the quotient never does: it is at most 2 FLT_MAX / 3). The minimum and maximum get
 * the end codes 0 and 2^bits - 1, except when -lo / scale is within rounding of a half-integer:
 * the zero point's tie goes to even and an end may land one code inside, still within scale/2.
 * The rule for a code — multiply by the float 1/scale, round half to even, add the zero point
 * after rounding — is PyTorch's quantize_val (and fbgemm's non-legacy Quantize), so with the
 * same scales and zero points torch.quantize_per_channel and fake_quantize give our codes and
 * dequantized values bit for bit (tests/reference/quant_ref.py). Rows are checked for
 * non-finite values, measured and quantized one at a time, so each row is read from memory once
 * and the later passes hit the cache; on a refusal the rows before it are already written.
 *
 * The hot loops are the kernels of core/kernels (mp__kern(), mp__kern_qbits()), which give the
 * same bits on every ISA.
 */
#include "methods_int.h"

#include "kernels/kernels_int.h"
#include "kernels/qbits_int.h"

#include <float.h>
#include <math.h>

size_t mp__first_nonfinite_f32(const float *x, size_t n)
{
    size_t i = 0;
    /* |x| < inf is false exactly for NaN and ±inf: one fast pass when all is well. */
    if (mp__kern()->count_below_f32(x, n, INFINITY) == n) {
        return n;
    }
    while (isfinite(x[i])) {
        i++;
    }
    return i;
}

/* absmax / qmax, or 1 where that would be 0 or subnormal (see the file comment). */
static float sym_scale(float absmax, int qmax)
{
    float s = absmax / (float)qmax;
    return s >= FLT_MIN ? s : 1.0f;
}

/* The checks every quantizer starts with: n = rows * cols fits, the weights and codes are
 * there when there are any, and so is the per-row (or per-group) output when need_out. */
static int check_matrix(const char *tn, const float *w, size_t rows, size_t cols, const void *q,
                        int need_out, const void *out, size_t *n, mp_errctx_t *err)
{
    MP_RETURN_IF(mp__mul_size(rows, cols, n), MP_EINVAL,
                 "tensor '%s': %zu x %zu elements do not fit in memory", tn, rows, cols);
    MP_RETURN_IF((need_out && out == NULL) || (*n > 0 && (w == NULL || q == NULL)), MP_EINVAL,
                 "tensor '%s': NULL buffer given to the quantizer", tn);
    return MP_OK;
}

/* MP_EINVAL naming the first non-finite element of row r, if there is one. */
static int check_row(const char *tn, const float *row, size_t r, size_t cols, mp_errctx_t *err)
{
    size_t bad = mp__first_nonfinite_f32(row, cols);
    MP_RETURN_IF(bad < cols, MP_EINVAL,
                 "tensor '%s': element %zu (row %zu, column %zu) is %s; only finite values can "
                 "be quantized",
                 tn, r * cols + bad, r, bad, isnan(row[bad]) ? "NaN" : "infinite");
    return MP_OK;
}

int mp__quant_i8_sym(const char *name, const float *w, size_t rows, size_t cols, int per_channel,
                     int8_t *q, float *scales, mp_errctx_t *err)
{
    const mp_kern_table_t *kern = mp__kern();
    const char *tn = name ? name : "(unnamed)";
    size_t n;
    float absmax = 0.0f;
    int rc = check_matrix(tn, w, rows, cols, q, 1, scales, &n, err);

    for (size_t r = 0; rc == MP_OK && r < rows; r++) {
        const float *row = w + r * cols;
        if ((rc = check_row(tn, row, r, cols, err)) != MP_OK) {
            break;
        }
        float m = kern->absmax_f32(row, cols);
        if (per_channel) {
            scales[r] = sym_scale(m, 127);
        } else {
            absmax = m > absmax ? m : absmax;
        }
    }
    if (rc != MP_OK) {
        return rc;
    }
    if (per_channel) {
        for (size_t r = 0; r < rows; r++) {
            kern->quant_i8_f32(w + r * cols, cols, 1.0f / scales[r], q + r * cols);
        }
    } else {
        scales[0] = sym_scale(absmax, 127);
        kern->quant_i8_f32(w, n, 1.0f / scales[0], q);
    }
    return MP_OK;
}

void mp__dequant_i8_sym(const int8_t *q, size_t rows, size_t cols, int per_channel,
                        const float *scales, float *w)
{
    const mp_kern_table_t *kern = mp__kern();
    if (!per_channel) {
        kern->dequant_i8_f32(q, rows * cols, scales[0], w);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        kern->dequant_i8_f32(q + r * cols, cols, scales[r], w + r * cols);
    }
}

/* ---- any width ----------------------------------------------------------------------------- */

/* Groups measured per kernel call: enough to amortise the call on small groups, small enough
 * for the stack. */
#define GROUP_CHUNK 64

/* Quantizes the groups of one row (finite values) whose ranges are lo[], hi[]. */
static void quant_groups(const mp_qbits_table_t *qb, const float *x, size_t len, size_t group,
                         int bits, int asymmetric, const float *lo, const float *hi, void *q,
                         float *scales, int32_t *zero_points)
{
    for (size_t i = 0, g = 0; i < len; i += group, g++) {
        size_t m = len - i < group ? len - i : group;
        if (!asymmetric) {
            int qmax = (1 << (bits - 1)) - 1;
            float absmax = -lo[g] > hi[g] ? -lo[g] : hi[g];
            scales[g] = sym_scale(absmax, qmax);
            qb->quant_sym_f32(x + i, m, 1.0f / scales[g], qmax, (int8_t *)q + i);
            continue;
        }
        int qmax = (1 << bits) - 1, zp = 0;
        float l = lo[g] < 0.0f ? lo[g] : 0.0f, h = hi[g] > 0.0f ? hi[g] : 0.0f;
        float s = (float)(((double)h - (double)l) / qmax);
        if (s >= FLT_MIN) {
            float z = nearbyintf(-l / s); /* 0 <= -l / s <= about qmax: the clamp is a guard */
            zp = z < 0.0f ? 0 : z > (float)qmax ? qmax : (int)z;
        } else {
            s = 1.0f;
        }
        scales[g] = s;
        zero_points[g] = zp;
        qb->quant_asym_f32(x + i, m, 1.0f / s, zp, qmax, (uint8_t *)q + i);
    }
}

int mp__quant_affine(const char *name, const float *w, size_t rows, size_t cols, size_t group,
                     int bits, int asymmetric, void *q, float *scales, int32_t *zero_points,
                     mp_errctx_t *err)
{
    const mp_qbits_table_t *qb = mp__kern_qbits();
    const char *tn = name ? name : "(unnamed)";
    float lo[GROUP_CHUNK], hi[GROUP_CHUNK];
    size_t n;
    int rc;

    MP_RETURN_IF(bits < 2 || bits > 8, MP_EINVAL,
                 "tensor '%s': %d bits; quantization takes 2 to 8 bits", tn, bits);
    MP_RETURN_IF(group == 0, MP_EINVAL,
                 "tensor '%s': group size 0; a group holds at least one element", tn);
    /* Groups exist only when there are elements; then scales (and zero points) are needed. */
    rc = check_matrix(tn, w, rows, cols, q, rows > 0 && cols > 0,
                      asymmetric && zero_points == NULL ? NULL : scales, &n, err);
    if (rc != MP_OK || n == 0) {
        return rc;
    }
    group = group < cols ? group : cols; /* a group longer than the row is the row */
    const size_t groups_per_row = cols / group + (cols % group != 0);
    /* A chunk is the whole row, or GROUP_CHUNK groups that are fewer than its cols elements
     * (so the product cannot overflow). */
    const size_t chunk = groups_per_row <= GROUP_CHUNK ? cols : GROUP_CHUNK * group;
    for (size_t r = 0; r < rows; r++) {
        const float *row = w + r * cols;
        rc = check_row(tn, row, r, cols, err);
        if (rc != MP_OK) {
            return rc;
        }
        for (size_t i = 0, g = r * groups_per_row; i < cols; i += chunk, g += GROUP_CHUNK) {
            size_t len = cols - i < chunk ? cols - i : chunk;
            qb->minmax_groups_f32(row + i, len, group, lo, hi);
            quant_groups(qb, row + i, len, group, bits, asymmetric, lo, hi,
                         (uint8_t *)q + r * cols + i, scales + g,
                         asymmetric ? zero_points + g : NULL);
        }
    }
    return MP_OK;
}

void mp__dequant_affine(const void *q, size_t rows, size_t cols, size_t group, int bits,
                        int asymmetric, const float *scales, const int32_t *zero_points, float *w)
{
    const mp_qbits_table_t *qb = mp__kern_qbits();
    const uint8_t *codes = q;
    size_t g = 0;

    (void)bits; /* the codes are whole bytes whatever the width */
    if (group == 0) {
        return;
    }
    group = group < cols ? group : cols; /* as the quantizer counts groups */
    for (size_t r = 0; r < rows; r++) {
        for (size_t i = 0; i < cols; i += group, g++) {
            size_t at = r * cols + i, m = cols - i < group ? cols - i : group;
            if (asymmetric) {
                qb->dequant_asym_f32(codes + at, m, scales[g], zero_points ? zero_points[g] : 0,
                                     w + at);
            } else {
                qb->dequant_sym_f32((const int8_t *)codes + at, m, scales[g], w + at);
            }
        }
    }
}

size_t mp__packed_bytes(size_t n, int bits)
{
    return mp__qbits_bytes(n, bits);
}

void mp__pack_bits(const uint8_t *codes, size_t n, int bits, uint8_t *out)
{
    mp__kern_qbits()->pack_bits(codes, n, bits, out);
}

void mp__unpack_bits(const uint8_t *in, size_t n, int bits, uint8_t *codes)
{
    mp__kern_qbits()->unpack_bits(in, n, bits, codes);
}

/* ---- binary and ternary -------------------------------------------------------------------- */

/* Sum of |w| over a row in double, in index order. */
static double sum_abs(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += fabs((double)x[i]);
    }
    return s;
}

/* Binary: codes w >= 0 (so -0.0 counts as +1, like the sign of 0), alpha = mean |w|.
 * Ternary: TWN's threshold and scale, the comparisons in double against the double delta. */
static void sign_row(const float *row, size_t cols, int ternary, uint8_t *codes, float *alpha)
{
    double mean = cols ? sum_abs(row, cols) / (double)cols : 0.0;
    if (!ternary) {
        *alpha = (float)mean;
        for (size_t c = 0; c < cols; c++) {
            codes[c] = row[c] >= 0.0f;
        }
        return;
    }
    double delta = 0.7 * mean, kept = 0.0;
    size_t n_kept = 0;
    for (size_t c = 0; c < cols; c++) {
        double v = row[c];
        codes[c] = v > delta ? 2 : v < -delta ? 0 : 1;
        if (fabs(v) > delta) {
            kept += fabs(v);
            n_kept++;
        }
    }
    *alpha = n_kept ? (float)(kept / (double)n_kept) : 0.0f;
}

static int quant_sign(const char *name, const float *w, size_t rows, size_t cols, int ternary,
                      uint8_t *codes, float *alphas, mp_errctx_t *err)
{
    const char *tn = name ? name : "(unnamed)";
    size_t n;
    int rc = check_matrix(tn, w, rows, cols, codes, rows > 0, alphas, &n, err);

    for (size_t r = 0; rc == MP_OK && r < rows; r++) {
        if (cols == 0) { /* the buffers may be NULL: no pointer arithmetic on them */
            alphas[r] = 0.0f;
        } else if ((rc = check_row(tn, w + r * cols, r, cols, err)) == MP_OK) {
            sign_row(w + r * cols, cols, ternary, codes + r * cols, &alphas[r]);
        }
    }
    return rc;
}

int mp__quant_binary(const char *name, const float *w, size_t rows, size_t cols, uint8_t *codes,
                     float *alphas, mp_errctx_t *err)
{
    return quant_sign(name, w, rows, cols, 0, codes, alphas, err);
}

int mp__quant_ternary(const char *name, const float *w, size_t rows, size_t cols, uint8_t *codes,
                      float *alphas, mp_errctx_t *err)
{
    return quant_sign(name, w, rows, cols, 1, codes, alphas, err);
}

void mp__error_stats(const float *w, const float *w2, size_t n, double *rel_error, double *sqnr_db)
{
    double signal, noise;
    mp__kern()->err_sums_f32(w, w2, n, &signal, &noise);
    if (rel_error) {
        /* 0/0 is an exact copy of nothing; x/0 an error with no signal to compare it to */
        *rel_error = signal > 0.0 ? sqrt(noise / signal) : noise > 0.0 ? INFINITY : 0.0;
    }
    if (sqnr_db) {
        *sqnr_db = noise > 0.0 ? 10.0 * log10(signal / noise) : INFINITY;
    }
}
