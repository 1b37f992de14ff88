/* SPDX-License-Identifier: MIT */
/* Transparent huge pages where the platform has none (POSIX): base pages. */
#include "thp.h"

enum iom_thp iom_thp_of(int fd)
{
        (void)fd;
        return IOM_THP_NEVER;
}
