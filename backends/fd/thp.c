/* SPDX-License-Identifier: MIT */
/* Transparent huge pages of tmpfs files, as Linux's sysfs and mount table
 * say (built on the Linux platform only; thp_none.c elsewhere). */
#include "thp.h"
#include "internal.h"
#include "syscalls.h"

#include <stdio.h>
#include <string.h>

#define THP_SYSFS "/sys/kernel/mm/transparent_hugepage"

static enum iom_thp thp_from_word(const char *w)
{
        if (!strcmp(w, "always") || !strcmp(w, "within_size") || !strcmp(w, "force"))
                return IOM_THP_ALWAYS;
        return !strcmp(w, "advise") ? IOM_THP_ADVISE : IOM_THP_NEVER;
}

void iom_sysfs_choice(const char *path, char *out, size_t cap)
{
        char line[256] = "";
        FILE *fp = fopen(path, "re");
        if (fp && !fgets(line, sizeof line, fp))
                line[0] = 0;
        if (fp)
                fclose(fp);
        const char *open = strchr(line, '['), *close = open ? strchr(open, ']') : NULL;
        if (close)
                snprintf(out, cap, "%.*s", (int)(close - open - 1), open + 1);
        else
                snprintf(out, cap, "%s", "");
}

/* The huge= option of the mount with this ID: 1 and the word in out when
 * the mount is listed (no option is "never"), 0 when it is not (the
 * kernel's internal mount, which memfd uses). */
static int mount_huge_option(int mnt_id, char *out, size_t cap)
{
        FILE *fp = fopen("/proc/self/mountinfo", "re");
        char line[8192];
        int found = 0;
        while (fp && !found && fgets(line, sizeof line, fp)) {
                int id;
                char opts[4096];
                const char *sep = strstr(line, " - ");
                if (sscanf(line, "%d", &id) != 1 || id != mnt_id || !sep ||
                    sscanf(sep + 3, "%*s %*s %4095s", opts) != 1)
                        continue;
                found = 1;
                snprintf(out, cap, "%s", "never");
                for (char *save, *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
                        if (!strncmp(o, "huge=", 5))
                                snprintf(out, cap, "%s", o + 5);
        }
        if (fp)
                fclose(fp);
        return found;
}

static int mount_id_of(int fd)
{
        char path[64], line[128];
        int id = -1;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
        FILE *fp = fopen(path, "re");
        while (fp && id < 0 && fgets(line, sizeof line, fp))
                if (sscanf(line, "mnt_id: %d", &id) != 1)
                        id = -1;
        if (fp)
                fclose(fp);
        return id;
}

enum iom_thp iom_thp_of(int fd)
{
        struct iom_fsinfo sf;
        if (iom_sys.fstatfs(fd, &sf) || sf.kind != IOM_FS_TMPFS)
                return IOM_THP_NEVER;
        char global[32], word[32];
        iom_sysfs_choice(THP_SYSFS "/shmem_enabled", global, sizeof global);
        if (!strcmp(global, "deny") || !strcmp(global, "force"))
                return thp_from_word(global);
        int id = mount_id_of(fd);
        if (id >= 0 && mount_huge_option(id, word, sizeof word))
                return thp_from_word(word);
        /* The kernel's own mount: the PMD size's own setting, unless it
         * inherits the global one. */
        char path[96];
        unsigned long pmd = 0;
        FILE *fp = fopen(THP_SYSFS "/hpage_pmd_size", "re");
        if (fp && fscanf(fp, "%lu", &pmd) != 1)
                pmd = 0;
        if (fp)
                fclose(fp);
        snprintf(path, sizeof path, THP_SYSFS "/hugepages-%lukB/shmem_enabled", pmd >> 10);
        iom_sysfs_choice(path, word, sizeof word);
        return thp_from_word(strcmp(word, "") && strcmp(word, "inherit") ? word : global);
}
