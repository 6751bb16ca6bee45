// A main() for the fuzz harnesses without libFuzzer: runs LLVMFuzzerTestOneInput once per
// file named on the command line (the seed corpora and the kept crash inputs), so the
// ordinary test suite replays them with gcc's ASan+UBSan and no clang.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 2;
        }
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        // A copy of exactly n bytes, so reads past the input are out of bounds for ASan.
        uint8_t *copy = malloc(n ? n : 1);
        for (size_t j = 0; j < n; j++) {
            copy[j] = buf[j];
        }
        LLVMFuzzerTestOneInput(copy, n);
        free(copy);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
