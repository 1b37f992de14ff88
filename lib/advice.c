/* SPDX-License-Identifier: MIT */
/* Advice values as the platform has them (platform.h). */
#include "platform.h"
#include "syscalls.h"

#include <errno.h>

static const struct iom_advice_value *by_value(int advice)
{
        for (size_t i = 0; i < iom_advice_count; i++)
                if (iom_advice_values[i].value == advice)
                        return &iom_advice_values[i];
        return NULL;
}

enum iom_advice iom_advice_kind(int advice)
{
        const struct iom_advice_value *v = by_value(advice);
        return v ? v->kind : IOM_ADV_UNKNOWN;
}

const char *iom_advice_name(int advice)
{
        const struct iom_advice_value *v = by_value(advice);
        return v ? v->name : NULL;
}

int iom_advise(void *va, size_t len, enum iom_advice a)
{
        for (size_t i = 0; i < iom_advice_count; i++)
                if (iom_advice_values[i].kind == a)
                        return iom_sys.madvise(va, len, iom_advice_values[i].value);
        errno = ENOTSUP;
        return -1;
}
