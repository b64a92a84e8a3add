/* fuzz_npy.c — libFuzzer target: the dataset reader on hostile .npy files (its corpus holds
 * NumPy's own files of every accepted dtype, version and order, and every hostile case of
 * RELIABILITY.md item 8). The checks are fuzz_check.h's. Built with clang by
 * tests/fuzz/run.sh; replayed over the committed corpus by make check (tests/fuzz/replay.c).
 */
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_dataset_check(data, size);
    return 0;
}
