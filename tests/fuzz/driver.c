/* driver.c - replays fuzz corpora without libFuzzer: each argument is a file
 * or a folder of files, each file one input to LLVMFuzzerTestOneInput.  So
 * ctest runs every harness over its corpus in the normal (gcc) builds, the
 * sanitizer build included; `-DLANDLORD_FUZZ=ON` with clang builds the same
 * harnesses against libFuzzer for real fuzzing. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;
    uint8_t chunk[65536];
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n > cap) {
            size_t want = (len + n) * 2;
            uint8_t *grown = realloc(buf, want);
            if (!grown) {
                free(buf);
                fclose(f);
                return 1;
            }
            buf = grown;
            cap = want;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf ? buf : (const uint8_t *)"", len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int failures = 0, inputs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "no such input %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            failures += run_file(argv[i]);
            inputs++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char path[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            failures += run_file(path);
            inputs++;
        }
        if (d)
            closedir(d);
    }
    printf("%d inputs replayed\n", inputs);
    return failures || inputs == 0;
}
