// The public header compiles on its own as C++ (extern "C" linkage).
#include <iomem.h>

int main()
{
        struct iomem_stat st = {};
        const char *(*msg)() = iomem_errormsg;
        return static_cast<int>(st.size) + (msg ? 0 : 1);
}
