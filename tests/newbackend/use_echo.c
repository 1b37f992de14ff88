/* SPDX-License-Identifier: MIT */
/* What tests/check-new-backend.sh checks of a build with the echo backend:
 * it is listed and usable, opens, reports the state the core allocated
 * for it, and every operation it left out is -ENOTSUP with a message. */
#include <errno.h>
#include <iomem.h>
#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                                       \
        do {                                                                              \
                if (!(cond)) {                                                            \
                        fprintf(stderr, "use_echo: line %d: %s (%s)\n", __LINE__, #cond,  \
                                iomem_errormsg());                                        \
                        return 1;                                                         \
                }                                                                         \
        } while (0)

int main(void)
{
        struct iomem_backend_info info[16];
        ssize_t n = iomem_backends(info, 16);
        int listed = 0;
        for (ssize_t i = 0; i < n && i < 16; i++)
                listed |= !strcmp(info[i].name, "echo") && info[i].available &&
                          info[i].caps == IOMEM_CAP_NAMED;
        CHECK(listed);
        struct iomem *f = NULL;
        CHECK(iomem_open(&f, "echo:x", IOMEM_RDWR, NULL) == 0);
        struct iomem_stat st;
        CHECK(iomem_stat(f, &st) == 0 && st.size == 1 && !strcmp(st.backend, "echo"));
        CHECK(iomem_acquire(f, 0, 4096) == -ENOTSUP);
        CHECK(strstr(iomem_errormsg(), "echo") && strstr(iomem_errormsg(), "acquire"));
        char c;
        CHECK(iomem_pread(f, &c, 1, 0) == -ENOTSUP);
        CHECK(iomem_rdlock(f) == -ENOTSUP);
        CHECK(iomem_truncate(f, 0) == -ENOTSUP);
        CHECK(iomem_close(&f) == 0 && f == NULL);
        printf("use_echo: a sixth backend: listed, opened, its state allocated by the core, "
               "the operations it left out -ENOTSUP\n");
        return 0;
}
