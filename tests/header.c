/* The public header compiles on its own as strict C11. */
#include <iomem.h>

int main(void)
{
        struct iomem_stat st = { 0 };
        return (int)st.size;
}
