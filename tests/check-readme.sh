#!/bin/sh
# The C examples in README.md compile against the public header
# (-Wall -Wextra -Werror), so the README cannot drift from the API.
set -eu
readme=$1 include=$2 cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
        printf '#include <iomem.h>\n#include <stdio.h>\n#include <string.h>\n'
        awk '/^```c$/ { inside = 1; next } /^```$/ { inside = 0 } inside && !/#include <iomem.h>/' "$readme"
        printf 'int main(void) { return 0; }\n'
} >"$tmp/readme.c"
n=$(grep -c '^```c$' "$readme")
"$cc" -std=gnu11 -Wall -Wextra -Werror -I"$include" -c "$tmp/readme.c" -o "$tmp/readme.o"
echo "readme: $n C examples compile"
