#!/bin/sh
# Every function that iomem.h declares has a man3 page (an alias counts,
# if it points at a page that names the function), every page is installed
# by man/meson.build, and every page renders without a groff warning.
# Usage: sh check-manpages.sh path/to/iomem.h path/to/man
set -u
header=$1 mandir=$2

if ! command -v groff >/dev/null 2>&1; then
        echo "manpages: groff is not installed (apt-get install groff-base); skipped"
        exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# The functions, from the header without its comments.
awk '{
        out = ""; line = $0
        while (line != "") {
                if (incomment) {
                        i = index(line, "*/")
                        if (!i) { line = ""; break }
                        line = substr(line, i + 2); incomment = 0
                } else {
                        i = index(line, "/*")
                        if (!i) { out = out line; line = "" }
                        else { out = out substr(line, 1, i - 1); line = substr(line, i + 2); incomment = 1 }
                }
        }
        print out
}' "$header" | grep -oE '(^|[^A-Za-z0-9_])iomem_[a-z0-9_]+[[:space:]]*\(' |
        sed -E 's/^[^i]*//; s/[[:space:]]*\($//' | sort -u >"$tmp/functions"
nfunc=$(wc -l <"$tmp/functions")
if [ "$nfunc" -eq 0 ]; then
        echo "manpages: no functions found in $header" >&2
        exit 1
fi

# The page an alias links to (a symbolic link beside it), or the page
# itself.
resolve() {
        if [ -L "$mandir/$1" ]; then
                echo "${1%/*}/$(readlink "$mandir/$1")"
        else
                echo "$1"
        fi
}

# The NAME section of a page, as one line.
names() {
        sed -n '/^\.SH[[:space:]]\{1,\}"\{0,1\}NAME/,/^\.SH/p' "$mandir/$1" | sed '1d;$d' | tr '\n' ' '
}

while read -r fn; do
        page=man3/$fn.3
        if [ ! -f "$mandir/$page" ]; then
                echo "manpages: $fn has no page ($mandir/$page is missing)" >&2
                status=1
                continue
        fi
        target=$(resolve "$page")
        if [ ! -f "$mandir/$target" ]; then
                echo "manpages: $page points at $target, which does not exist" >&2
                status=1
        elif ! names "$target" | grep -qE "(^|[^A-Za-z0-9_])$fn([^A-Za-z0-9_]|$)"; then
                echo "manpages: $fn is not in the NAME section of $target" >&2
                status=1
        fi
done <"$tmp/functions"

# Every page is installed.
build=$mandir/meson.build
npages=0
for page in "$mandir"/man[0-9]/*.[0-9]*; do
        [ -f "$page" ] || continue
        rel=${page#"$mandir"/}
        npages=$((npages + 1))
        if [ -f "$build" ] && ! grep -q "'$rel'" "$build"; then
                echo "manpages: $rel is not listed in $build" >&2
                status=1
        fi
done

# Every page renders cleanly from any directory, as `man -l PAGE` reads
# it (through soelim and tbl, like man(1)); any output on stderr is a
# failure. An alias is a symbolic link, not a ".so" stub, which man -l
# resolves against the current directory only.
clean=0
for page in "$mandir"/man[0-9]/*.[0-9]*; do
        [ -f "$page" ] || continue
        rel=${page#"$mandir"/}
        if grep -q '^\.so' "$page"; then
                echo "manpages: $rel includes another page with .so; make it a symbolic link" >&2
                status=1
        fi
        if (cd / && groff -s -t -man -ww -z -Tutf8 "$page") >"$tmp/out" 2>"$tmp/err" &&
           [ ! -s "$tmp/err" ]; then
                clean=$((clean + 1))
        else
                echo "manpages: $rel does not render cleanly:" >&2
                sed 's/^/    /' "$tmp/err" >&2
                status=1
        fi
done

if [ $status -eq 0 ]; then
        echo "manpages: $nfunc functions, all documented, $clean pages render cleanly"
else
        echo "manpages: $nfunc functions, $clean of $npages pages render cleanly; see the errors above" >&2
fi
exit $status
