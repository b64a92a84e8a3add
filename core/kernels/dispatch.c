/* dispatch.c — chooses, once per process, which kernel table the core runs with.
 *
 * Three const tables (ref, avx2, avx512) name the kernels of their files. mp__kern() picks one
 * on first use under pthread_once: the best this CPU and OS support (__builtin_cpu_supports
 * also checks that the OS saves the wider registers), or the one MODELPRESS_ISA names; a
 * forced ISA the CPU lacks, or an unknown name, falls back to the best supported. The choice
 * never changes afterwards, so every tensor of a run is processed by the same code.
 * mp__kern_for() answers for one ISA by name without touching that choice (tests use it).
 */
#include "kernels_int.h"
#include "modelpress.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TABLE(name)                                                                                \
    {                                                                                              \
        .isa = #name, .absmax_f32 = mp_kern_absmax_f32_##name,                                     \
        .quant_i8_f32 = mp_kern_quant_i8_f32_##name,                                               \
        .dequant_i8_f32 = mp_kern_dequant_i8_f32_##name,                                           \
        .count_below_f32 = mp_kern_count_below_f32_##name,                                         \
        .mask_below_f32 = mp_kern_mask_below_f32_##name,                                           \
        .err_sums_f32 = mp_kern_err_sums_f32_##name,                                               \
    }

/* Best first: the fallback is the first supported entry. */
static const mp_kern_table_t tables[] = {TABLE(avx512), TABLE(avx2), TABLE(ref)};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

static int supported(const mp_kern_table_t *t)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (strcmp(t->isa, "avx512") == 0) {
        /* DQ as well: kern_avx512.c is compiled with -mavx512dq, so the compiler may use it. */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }
    if (strcmp(t->isa, "avx2") == 0) {
        return __builtin_cpu_supports("avx2");
    }
#endif
    return strcmp(t->isa, "ref") == 0;
}

const mp_kern_table_t *mp__kern_for(const char *isa)
{
    for (size_t i = 0; isa && i < N_TABLES; i++) {
        if (strcmp(tables[i].isa, isa) == 0) {
            return supported(&tables[i]) ? &tables[i] : NULL;
        }
    }
    return NULL;
}

static const mp_kern_table_t *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const char *forced = getenv("MODELPRESS_ISA");
    chosen = forced ? mp__kern_for(forced) : NULL;
    for (size_t i = 0; !chosen && i < N_TABLES; i++) {
        chosen = supported(&tables[i]) ? &tables[i] : NULL;
    }
}

const mp_kern_table_t *mp__kern(void)
{
    pthread_once(&chosen_once, choose);
    return chosen;
}

const char *mp_kern_isa(void)
{
    return mp__kern()->isa;
}
