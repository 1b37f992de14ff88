#!/bin/sh
# A new backend is a folder of its own and one line of the list: copy the
# sources, add tests/newbackend as backends/echo and one line to the list
# in backends/meson.build, touch nothing else, build the library, and run
# a program that opens an echo: object.
#   check-new-backend.sh SOURCE-ROOT
set -eu
src=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/iomem-newbackend.XXXXXX")
trap 'rm -rf "$work"' EXIT
for part in meson.build meson_options.txt include lib backends examples man; do
        cp -R "$src/$part" "$work/"
done
mkdir "$work/backends/echo"
cp "$src/tests/newbackend/meson.build" "$src/tests/newbackend/echo.c" "$work/backends/echo/"
# The one line.
sed -i "s/^backend_list = \[$/&\n  ['echo', 'echo'],/" "$work/backends/meson.build"
grep -q "\['echo', 'echo'\]" "$work/backends/meson.build" || {
        echo "check-new-backend: the backend list in backends/meson.build has moved" >&2
        exit 1
}
log=$work/build.log
if ! { meson setup "$work/build" "$work" -Dtests=disabled && ninja -C "$work/build"; } >"$log" 2>&1; then
        cat "$log"
        echo "check-new-backend: the library does not build with a sixth backend" >&2
        exit 1
fi
cc -std=c11 -Wall -Wextra -Werror -I"$src/include" -o "$work/use_echo" \
        "$src/tests/newbackend/use_echo.c" -L"$work/build" -liomem
LD_LIBRARY_PATH=$work/build "$work/use_echo"
