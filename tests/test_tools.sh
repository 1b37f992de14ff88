#!/bin/sh
# The command-line tools end to end, on shm objects: every iomem-mmap
# command, a pin held by one process refusing another's truncate,
# iomem-sendfile to a file, a pipe and sockets compared with cmp, exit
# codes and messages, iomem-info, and iomem-remote serving and fetching
# over libfabric on the loopback.
# Usage: sh test_tools.sh IOMEM-SENDFILE IOMEM-MMAP IOMEM-INFO IOMEM-REMOTE SINK
# (SINK is tests/sink.c built: the socket destination, so that no socket
# case needs python3 or socat.)
set -u
if [ $# -ne 5 ]; then
        echo "usage: sh test_tools.sh IOMEM-SENDFILE IOMEM-MMAP IOMEM-INFO IOMEM-REMOTE SINK" >&2
        exit 2
fi
sendfile=$1 mmap=$2 info=$3 remote=$4 sink=$5

if ! [ -d /dev/shm ] || ! [ -w /dev/shm ]; then
        echo "tools: /dev/shm is not writable, so no shm object can be made; skipped"
        exit 77
fi

tmp=$(mktemp -d) || exit 1
prefix=shm:iomem-tools-$$
pids=
cleanup() {
        for p in $pids; do
                kill "$p" 2>/dev/null
        done
        rm -f /dev/shm/iomem-tools-$$-*
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

passed=0 failed=0
pass() {
        passed=$((passed + 1))
        echo "ok - $1"
}
fail() {
        failed=$((failed + 1))
        echo "FAIL - $1"
        shift
        for line in "$@"; do
                echo "    $line"
        done
}

# run CMD...: its status in $rc, its output in $tmp/out and $tmp/err.
run() {
        "$@" >"$tmp/out" 2>"$tmp/err"
        rc=$?
}

# expect CODE DESCRIPTION CMD...: CMD exits with CODE.
expect() {
        code=$1 desc=$2
        shift 2
        run "$@"
        if [ "$rc" -eq "$code" ]; then
                pass "$desc"
        else
                fail "$desc" "exit $rc, expected $code: $*" "stderr: $(head -c 400 "$tmp/err")"
        fi
}

# check DESCRIPTION CMD...: CMD succeeds (a test of what the last run left).
check() {
        desc=$1
        shift
        if "$@"; then
                pass "$desc"
        else
                fail "$desc" "failed: $*" "stdout: $(head -c 400 "$tmp/out")" \
                        "stderr: $(head -c 400 "$tmp/err")"
        fi
}

# The last run's stderr is one line that contains TEXT.
one_line() {
        [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qF -- "$1" "$tmp/err"
}

# The last run's stdout is exactly TEXT (no newline added).
out_is() {
        printf '%s' "$1" | cmp -s - "$tmp/out"
}

# wait_for FILE TEXT PID: poll, at most 10 s, until FILE holds TEXT; fail
# early if PID is gone.
wait_for() {
        i=0
        while ! grep -qF -- "$2" "$1" 2>/dev/null; do
                if [ $i -ge 100 ] || ! kill -0 "$3" 2>/dev/null; then
                        grep -qF -- "$2" "$1" 2>/dev/null
                        return
                fi
                sleep 0.1
                i=$((i + 1))
        done
}

# start_hold OUT URI OFFSET LENGTH: iomem-mmap hold in the background, its
# pid in $holder; succeeds once it says that it is holding. OUT must be new
# to each holder, or an earlier holder's line would count.
start_hold() {
        out=$1
        shift
        $as "$mmap" hold "$@" >"$out" 2>"$out.err" &
        holder=$!
        pids="$pids $holder"
        wait_for "$out" holding "$holder" || {
                cat "$out" "$out.err"
                return 1
        }
}

# Who runs the holder: this user, or (as=...) another.
as=

# stop_hold SIGNAL: send it to the holder; succeeds if the holder exits 0.
stop_hold() {
        kill -s "$1" "$holder"
        wait "$holder"
}

# write_file URI OFFSET FILE: iomem-mmap write URI OFFSET - <FILE
write_file() {
        "$mmap" write "$1" "$2" - <"$3"
}

have() {
        command -v "$1" >/dev/null 2>&1
}

# ---- --help and usage errors -------------------------------------------------

for tool in "$sendfile" "$mmap" "$info"; do
        name=$(basename "$tool")
        expect 0 "$name --help exits 0" "$tool" --help
        check "$name --help shows usage and an example" \
                grep -q 'Usage:' "$tmp/out"
        check "$name --help has an example" grep -qi 'example' "$tmp/out"
        expect 2 "$name rejects an unknown option" "$tool" --no-such-option
        check "$name: one-line hint for an unknown option" one_line "--help"
        expect 0 "$name --version exits 0" "$tool" --version
        check "$name --version names the tool and the library's version" \
                grep -qE "^$name \(libiomem\) [0-9]+\.[0-9]+\.[0-9]+$" "$tmp/out"
done

expect 2 "iomem-mmap without a command" "$mmap"
expect 2 "iomem-mmap with an unknown command" "$mmap" frobnicate "$prefix-x"
expect 2 "iomem-mmap create without --size" "$mmap" create "$prefix-x"
expect 2 "iomem-mmap create with a bad size" "$mmap" create "$prefix-x" --size 12Q
expect 2 "iomem-mmap create with a size of no whole bytes" "$mmap" create "$prefix-x" --size 0.1K
expect 2 "iomem-mmap create with a size that ends in a point" "$mmap" create "$prefix-x" --size 1.K
expect 0 "iomem-mmap create with a decimal size" "$mmap" create "$prefix-dec" --size 1.5K
expect 0 "... whose size is whole bytes" "$mmap" info "$prefix-dec"
check "... 1.5K is 1536 bytes" grep -q '^size: *1536 bytes' "$tmp/out"
expect 2 "iomem-mmap truncate to 0.001T (not whole bytes)" "$mmap" truncate "$prefix-dec" 0.001T
# Half a TiB: made (sparse) where /dev/shm is that large, else refused for
# want of space, naming the size; either way 0.5T was 549755813888 bytes.
half_tib() {
        run "$mmap" create "$prefix-tib" --size 0.5T
        if [ "$rc" -eq 0 ]; then
                run "$mmap" info "$prefix-tib" && grep -q '^size: *549755813888 bytes' "$tmp/out"
        else
                [ "$rc" -eq 1 ] && grep -q 549755813888 "$tmp/err"
        fi
}
check "iomem-mmap create --size 0.5T is 549755813888 bytes" half_tib
expect 2 "iomem-mmap --json does not apply to create" "$mmap" create "$prefix-x" --size 1 --json
expect 2 "iomem-mmap info with too many arguments" "$mmap" info "$prefix-x" extra
expect 2 "iomem-mmap --seal with an unknown seal" "$mmap" create "$prefix-x" --size 1 --seal glue
expect 2 "iomem-mmap --numa with an unknown policy" "$mmap" create "$prefix-x" --size 1 --numa far:0
expect 2 "iomem-mmap fill with a byte out of range" "$mmap" fill "$prefix-x" 256
expect 2 "iomem-mmap info refuses memfd:" "$mmap" info memfd:x
check "iomem-mmap: the memfd refusal says why, on one line" one_line "memfd object lives only while"
expect 2 "iomem-mmap read refuses a name of the default backend (memfd)" \
        env -u IOMEM_BACKEND "$mmap" read plain-name 0 1
expect 2 "iomem-sendfile with one argument" "$sendfile" "$prefix-x"
expect 2 "iomem-sendfile refuses memfd:" "$sendfile" memfd:x "$tmp/never"
check "iomem-sendfile: the memfd refusal says why, on one line" one_line "exists only inside the process"
expect 2 "iomem-sendfile --append to standard output" "$sendfile" --append "$prefix-x" -
expect 2 "iomem-sendfile with a bad offset" "$sendfile" -o 1X "$prefix-x" "$tmp/never"
check "no usage error created the destination" test ! -e "$tmp/never"

# ---- iomem-mmap round trips on shm ---------------------------------------------

u=$prefix-a
expect 0 "create an shm object of 64K" "$mmap" create "$u" --size 64K
expect 1 "create refuses an existing object" "$mmap" create "$u" --size 64K
check "create names the object when it exists" one_line "$u"
expect 0 "info" "$mmap" info "$u"
check "info shows the size" grep -q '^size: *65536 bytes$' "$tmp/out"
check "info shows the backend" grep -q '^backend: *shm$' "$tmp/out"
check "info shows capabilities by name" grep -q '^caps: .*NAMED' "$tmp/out"
expect 0 "info --json" "$mmap" info "$u" --json
if have python3; then
        check "info --json is valid JSON" python3 -m json.tool "$tmp/out" /dev/null
        check "info --json holds size, backend and caps" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["size"] == 65536 and d["backend"] == "shm" and "RESIZE" in d["caps"], d
assert d["acquired"] == 0 and d["numa_node"] is None and d["dax"] is False, d
' "$tmp/out"
else
        echo "skip - python3 is not installed: info --json not validated"
        check "info --json holds the size" grep -q '"size": 65536' "$tmp/out"
fi

expect 0 "write a string" "$mmap" write "$u" 0 hello
expect 0 "read it back" "$mmap" read "$u" 0 5
check "read gives the string" out_is hello
printf 'from stdin' >"$tmp/stdin"
expect 0 "write standard input (-)" write_file "$u" 100 "$tmp/stdin"
expect 0 "read it back" "$mmap" read "$u" 100 10
check "read gives standard input's bytes" out_is "from stdin"
expect 0 "writes inside the object keep its size" "$mmap" info "$u"
check "the size is still 64K" grep -q '^size: *65536 bytes$' "$tmp/out"

expect 0 "dump" "$mmap" dump "$u" 0 32
check "dump looks like xxd" grep -qxF \
        '00000000: 6865 6c6c 6f00 0000 0000 0000 0000 0000  hello...........' "$tmp/out"
if have xxd; then
        "$mmap" read "$u" 0 64K >"$tmp/all"
        xxd "$tmp/all" >"$tmp/xxd"
        expect 0 "dump of the whole object" "$mmap" dump "$u"
        check "dump is byte-identical to xxd" cmp -s "$tmp/out" "$tmp/xxd"
        xxd -s 97 -l 37 "$tmp/all" >"$tmp/xxd"
        expect 0 "dump of a range" "$mmap" dump "$u" 97 37
        check "dump of a range matches xxd -s -l" cmp -s "$tmp/out" "$tmp/xxd"
else
        echo "skip - xxd is not installed: dump not compared with it"
fi

head -c 65536 /dev/zero | tr '\000' A >"$tmp/A"
expect 0 "fill with a character" "$mmap" fill "$u" A
expect 0 "read the whole object" "$mmap" read "$u" 0 1M
check "every byte is A, and read stops at the end" cmp -s "$tmp/out" "$tmp/A"
tr A B <"$tmp/A" >"$tmp/B"
expect 0 "fill with 0xHH" "$mmap" fill "$u" 0x42
expect 0 "read the whole object" "$mmap" read "$u" 0 64K
check "every byte is B" cmp -s "$tmp/out" "$tmp/B"

expect 0 "truncate to shrink" "$mmap" truncate "$u" 10000
expect 0 "info after truncate" "$mmap" info "$u"
check "the size is 10000" grep -q '^size: *10000 bytes$' "$tmp/out"
expect 0 "truncate to grow" "$mmap" truncate "$u" 20000
expect 0 "read the grown part" "$mmap" read "$u" 10000 10000
head -c 10000 /dev/zero >"$tmp/zeros"
check "the grown part reads as zeros" cmp -s "$tmp/out" "$tmp/zeros"

# NUMA placement: node 0 exists wherever placement works; a library built
# without libnuma, or a kernel without NUMA, says why (exit 1).
n=$prefix-numa
run "$mmap" create "$n" --size 64K --numa bind:0
if [ "$rc" -eq 0 ]; then
        pass "create --numa bind:0"
        expect 0 "fill the bound object" "$mmap" fill "$n" 1
        expect 0 "info on the bound object" "$mmap" info "$n"
        check "its memory is on node 0" grep -q '^numa node: *0$' "$tmp/out"
        expect 0 "unlink the bound object" "$mmap" unlink "$n"
else
        check "create --numa fails with one line where placement is unavailable" \
                test "$rc" -eq 1 -a "$(wc -l <"$tmp/err")" -eq 1
        echo "skip - NUMA placement is not available here: $(cat "$tmp/err")"
fi
expect 1 "create --numa on a node that does not exist" "$mmap" create "$n" --size 64K --numa bind:99999
check "... says why, on one line" one_line "$n"

# ---- messages for the tools' users ---------------------------------------------

# No C function, IOMEM_ flag or descriptor number, no empty or doubled
# prefix: what the user typed, and what to do about it.
for_the_user() {
        one_line "$1" && ! grep -qE 'IOMEM_|iomem_[a-z]+:|fd [0-9]|: :' "$tmp/err"
}
expect 1 "info on a missing object" "$mmap" info "$prefix-missing"
check "... says so, and how to make one" for_the_user "no such object (iomem-mmap create makes one)"
expect 1 "info on an empty shm name" "$mmap" info shm:
check "... names shm: once" for_the_user "shm:: a shm name is one path component"
expect 1 "create over an existing object" "$mmap" create "$prefix-dec" --size 1
check "... says it exists" for_the_user "$prefix-dec: it exists already"
expect 1 "sendfile from a missing path" "$sendfile" "$tmp/no-such-file" "$tmp/x"
check "... as cp says it" for_the_user "$tmp/no-such-file: No such file or directory"
expect 1 "sendfile from a missing object" "$sendfile" "$prefix-missing" "$tmp/x"
check "... no hint to make what it reads" for_the_user "$prefix-missing: no such object"

# One rule for a scheme: word in every tool.
expect 1 "iomem-mmap: foo:bar is a URI of no backend" "$mmap" info foo:bar
check "... and says so" one_line 'foo:bar: unknown backend "foo"'
expect 1 "iomem-sendfile: foo:bar is the same URI" "$sendfile" foo:bar "$tmp/x"
check "... and says the same" one_line 'foo:bar: unknown backend "foo"'
printf colon >"$tmp/foo:bar"
abs_sendfile=$(cd "$(dirname "$sendfile")" && pwd)/$(basename "$sendfile")
expect 0 "./foo:bar is a file" sh -c "cd '$tmp' && '$abs_sendfile' ./foo:bar -"
check "... copied" out_is colon

# ---- a pin held by another process --------------------------------------------

h=$prefix-hold
expect 0 "create an object to hold" "$mmap" create "$h" --size 64K
check "hold says it is holding" start_hold "$tmp/hold1.out" "$h" 0 8K
check "hold names the range and the signals" grep -qxF \
        "holding [0, 8192) of $h; send SIGINT or SIGTERM to release" "$tmp/hold1.out"
expect 1 "truncate over the held range fails" "$mmap" truncate "$h" 0
check "truncate says the range is pinned, on one line" one_line "pinned"
check "truncate names the range and the holder" grep -qF "[0, 8192) are pinned (acquired) by process $holder" "$tmp/err"
expect 0 "info while another process holds it" "$mmap" info "$h"
check "info shows the bytes pinned" grep -qE "^pinned: +8192 bytes" "$tmp/out"
check "info names the holder" grep -qE "^holders: +$holder\$" "$tmp/out"
expect 0 "info --json while another process holds it" "$mmap" info "$h" --json
check "info --json lists the holder" grep -qF "\"holders\": [$holder]" "$tmp/out"
expect 0 "truncate that spares the held range succeeds" "$mmap" truncate "$h" 16K
check "hold releases and exits 0 on SIGTERM" stop_hold TERM
expect 0 "truncate succeeds once released" "$mmap" truncate "$h" 0

expect 0 "grow it again" "$mmap" truncate "$h" 8K
check "hold of a second page says it is holding" start_hold "$tmp/hold2.out" "$h" 4K 4K
expect 1 "truncate into the held page fails" "$mmap" truncate "$h" 5000
check "hold releases and exits 0 on SIGINT" stop_hold INT
expect 0 "truncate succeeds once released" "$mmap" truncate "$h" 5000
expect 1 "hold needs whole pages" "$mmap" hold "$h" 1 4K
check "hold says why, on one line" one_line "page size"

# list: the object, its size, mode, owner and holders; no metadata objects.
check "a holder for list to count" start_hold "$tmp/hold4.out" "$h" 0 4K
expect 0 "list" "$mmap" list
check "list names the object with its size, mode and owner" \
        grep -qE "^$h +5000 +0600 +$(id -un) +1$" "$tmp/out"
check "list leaves the metadata objects out" sh -c "! grep -q '\.iomem ' '$tmp/out'"
expect 0 "list --json" "$mmap" list --json
if have python3; then
        check "list --json holds the object and its holder" python3 -c '
import json, sys
objs = {o["uri"]: o for o in json.load(open(sys.argv[1]))}
o = objs[sys.argv[2]]
assert o["size"] == 5000 and o["mode"] == "0600" and o["holders"] == 1, o' "$tmp/out" "$h"
fi
check "list's holder releases" stop_hold TERM
expect 2 "list takes no URI" "$mmap" list "$h"

# Holding takes no write: a user who may only read the object holds it.
ro=$prefix-readonly
expect 0 "create an object others may only read" "$mmap" create "$ro" --size 8K --mode 0644
if [ "$(id -u)" -eq 0 ] && have setpriv && id nobody >/dev/null 2>&1; then
        as="setpriv --reuid=nobody --regid=nogroup --clear-groups"
        check "a reader (nobody) holds it" start_hold "$tmp/hold3.out" "$ro" 0 4K
        check "the reader's hold releases and exits 0" stop_hold TERM
        as=
else
        echo "SKIP: a reader's hold (needs root and setpriv to run as nobody)"
fi

# ---- iomem-sendfile ---------------------------------------------------------------

s=$prefix-src
head -c 3000000 /dev/urandom >"$tmp/ref"
expect 0 "create a source" "$mmap" create "$s" --size 0
expect 0 "fill it from a file" write_file "$s" 0 "$tmp/ref"

expect 0 "sendfile to a file" "$sendfile" "$s" "$tmp/copy"
check "the file is identical" cmp -s "$tmp/copy" "$tmp/ref"
check "nothing on stderr when it is not a terminal" test ! -s "$tmp/err"
check "the file has mode 0644 less the umask" \
        test "$(stat -c %a "$tmp/copy")" = "$(printf '%o' $((0644 & ~$(umask))))"
head -c 5000000 /dev/urandom >"$tmp/copy"
expect 0 "sendfile over a longer file" "$sendfile" "$s" "$tmp/copy"
check "the longer file was truncated" cmp -s "$tmp/copy" "$tmp/ref"

expect 0 "sendfile the first 1000 bytes" "$sendfile" -n 1000 "$s" "$tmp/appended"
expect 0 "sendfile --append the rest" "$sendfile" --append -o 1000 "$s" "$tmp/appended"
check "the appended file is identical" cmp -s "$tmp/appended" "$tmp/ref"
expect 0 "sendfile -o 1M -n 4K" "$sendfile" -o 1M -n 4K "$s" "$tmp/part"
tail -c +1048577 "$tmp/ref" | head -c 4096 >"$tmp/refpart"
check "the range is identical" cmp -s "$tmp/part" "$tmp/refpart"
expect 0 "sendfile past the end copies nothing" "$sendfile" -o 100M "$s" "$tmp/empty"
check "... and leaves an empty file" test -f "$tmp/empty" -a ! -s "$tmp/empty"

{
        "$sendfile" "$s" - 2>"$tmp/pipe.err"
        echo $? >"$tmp/pipe.rc"
} | cmp -s - "$tmp/ref"
piped=$?
check "sendfile to - into a pipe is identical" test "$piped" -eq 0 -a "$(cat "$tmp/pipe.rc")" -eq 0

expect 0 "sendfile --stats" "$sendfile" --stats "$s" "$tmp/copy"
check "--stats counts the bytes" grep -q '^bytes: *3000000$' "$tmp/err"
check "--stats counts one copy" grep -q '^copies: *1$' "$tmp/err"
check "--stats counts the iovecs" grep -q '^iovecs: *[1-9][0-9]*$' "$tmp/err"
check "--stats gives seconds and GiB/s" grep -q '^GiB/s: *[0-9]' "$tmp/err"
expect 0 "sendfile --stats --json" "$sendfile" --stats --json "$s" "$tmp/copy"
if have python3; then
        check "--json is one JSON object with the byte count" python3 -c '
import json, sys
s = json.loads(open(sys.argv[1]).read())
assert s["bytes"] == 3000000 and s["copies"] == 1 and s["gib_per_s"] >= 0, s' "$tmp/err"
fi
expect 2 "--json without --stats" "$sendfile" --json "$s" "$tmp/copy"

# A sparse source: holes come out as zeros.
sp=$prefix-sparse
head -c 4194304 /dev/zero >"$tmp/sparse"
printf middle | dd of="$tmp/sparse" bs=1 seek=2097152 conv=notrunc 2>/dev/null
expect 0 "create a sparse source" "$mmap" create "$sp" --size 4M
expect 0 "write in its middle" "$mmap" write "$sp" 2M middle
expect 0 "sendfile a sparse source" "$sendfile" "$sp" "$tmp/sparse.copy"
check "the sparse copy is identical" cmp -s "$tmp/sparse.copy" "$tmp/sparse"
expect 0 "sendfile --sparse" "$sendfile" --sparse "$sp" "$tmp/sparse.holes"
check "... identical too" cmp -s "$tmp/sparse.holes" "$tmp/sparse"
check "... in fewer blocks than the copy with zeros" \
        test "$(stat -c %b "$tmp/sparse.holes")" -lt "$(stat -c %b "$tmp/sparse.copy")"
expect 2 "--sparse to standard output" "$sendfile" --sparse "$sp" -

# ---- objects as destinations, real files, and the same file on both sides ---------

# A tar of /usr/share/doc (its first 32 MiB, where it is larger).
tar cf - -C /usr/share doc 2>/dev/null | head -c 33554432 >"$tmp/docs.tar"
check "a tar of /usr/share/doc to load" test -s "$tmp/docs.tar"
d=$prefix-docs
expect 0 "load standard input into an object, with --stats" \
        sh -c "cat '$tmp/docs.tar' | '$sendfile' --stats - '$d'"
check "... read straight into its memory: one copy" grep -q '^copies: *1$' "$tmp/err"
expect 0 "... and back out" "$sendfile" "$d" "$tmp/docs.out"
check "... the same bytes" cmp -s "$tmp/docs.tar" "$tmp/docs.out"
tail -c +1001 "$tmp/docs.tar" | head -c 5242880 >"$tmp/docs.part"
expect 0 "-o and -n on a pipe" sh -c "cat '$tmp/docs.tar' | '$sendfile' -o 1000 -n 5M - '$d-part'"
expect 0 "... the bytes from 1000 on, 5 MiB of them" sh -c \
        "'$sendfile' '$d-part' - | cmp -s - '$tmp/docs.part'"
expect 0 "load a file into an object, with --stats" "$sendfile" --stats "$tmp/docs.tar" "$d-2"
check "... one copy (iomem_copy)" grep -q '^copies: *1$' "$tmp/err"
expect 0 "object to object" "$sendfile" "$d-2" "$d-3"
expect 0 "... and out to standard output" sh -c "'$sendfile' '$d-3' - | cmp -s - '$tmp/docs.tar'"
expect 0 "--append loads after the object's end" "$sendfile" --append "$tmp/docs.tar" "$d-3"
cat "$tmp/docs.tar" "$tmp/docs.tar" >"$tmp/docs2.tar"
expect 0 "... which holds it twice" sh -c "'$sendfile' '$d-3' - | cmp -s - '$tmp/docs2.tar'"
deb=$(ls /var/cache/apt/archives/*.deb 2>/dev/null | head -n 1)
if [ -n "$deb" ]; then
        expect 0 "load a .deb into an object" "$sendfile" "$deb" "$d-deb"
        check "... its sha256 is the file's" sh -c \
                "[ \"\$('$sendfile' '$d-deb' - | sha256sum)\" = \"\$(sha256sum <'$deb')\" ]"
else
        echo "SKIP: a .deb (none in /var/cache/apt/archives)"
fi
expect 2 "an object that vanishes with the tool is no destination" "$sendfile" "$tmp/docs.tar" memfd:x

cp "$tmp/docs.tar" "$tmp/same"
expect 1 "a file copied onto itself is refused" "$sendfile" "$tmp/same" "$tmp/same"
check "... as cp refuses it, on one line" one_line "are the same file"
check "... and left whole" cmp -s "$tmp/same" "$tmp/docs.tar"
expect 1 "an object copied onto its own file is refused" "$sendfile" "$d" "/dev/shm/${d#shm:}"
check "... and left whole" sh -c "'$sendfile' '$d' - | cmp -s - '$tmp/docs.tar'"
expect 1 "an object copied onto itself is refused" "$sendfile" "$d" "$d"
check "... and left whole" sh -c "'$sendfile' '$d' - | cmp -s - '$tmp/docs.tar'"

# A file whose size says 0 but that has contents (procfs) is read to its
# end, as cp reads it.
expect 0 "sendfile /proc/version" "$sendfile" /proc/version "$tmp/version"
check "... copies what cat reads" sh -c "cat /proc/version | cmp -s - '$tmp/version'"
expect 0 "sendfile --stats /proc/self/status" "$sendfile" --stats /proc/self/status "$tmp/status"
check "... its contents" grep -q '^Name:' "$tmp/status"
check "... counted as two copies (read, then write)" grep -q '^copies: *2$' "$tmp/err"

z=$prefix-zero
expect 0 "create a zero-length object" "$mmap" create "$z" --size 0
expect 0 "sendfile a zero-length object" "$sendfile" "$z" "$tmp/zero.copy"
check "the copy exists and is empty" test -f "$tmp/zero.copy" -a ! -s "$tmp/zero.copy"
expect 0 "read a zero-length object" "$mmap" read "$z" 0 1K
check "read gives nothing" test ! -s "$tmp/out"
expect 0 "dump a zero-length object" "$mmap" dump "$z"
check "dump gives nothing" test ! -s "$tmp/out"
expect 0 "fill a zero-length object" "$mmap" fill "$z" 0

"$sink" unix "$tmp/sock" "$tmp/unix.out" "$tmp/unix.ready" 2>"$tmp/sink.err" &
sinkpid=$!
pids="$pids $sinkpid"
if wait_for "$tmp/unix.ready" "" "$sinkpid"; then
        expect 0 "sendfile to unix:PATH" "$sendfile" "$s" "unix:$tmp/sock"
        wait "$sinkpid"
        check "the unix socket received identical bytes" cmp -s "$tmp/unix.out" "$tmp/ref"
else
        fail "the unix socket sink starts" "$(cat "$tmp/sink.err")"
fi

"$sink" tcp "$tmp/tcp.out" "$tmp/tcp.ready" 2>"$tmp/sink.err" &
sinkpid=$!
pids="$pids $sinkpid"
if wait_for "$tmp/tcp.ready" "" "$sinkpid"; then
        expect 0 "sendfile to tcp:HOST:PORT" "$sendfile" "$s" "tcp:127.0.0.1:$(cat "$tmp/tcp.ready")"
        wait "$sinkpid"
        check "the tcp socket received identical bytes" cmp -s "$tmp/tcp.out" "$tmp/ref"
else
        fail "the tcp socket sink starts" "$(cat "$tmp/sink.err")"
fi

# --aio: the same copies as asynchronous transfers (io_uring), where built.
run "$sendfile" --aio "$s" "$tmp/aio.copy"
if [ "$rc" -eq 1 ] && grep -q 'not in this build' "$tmp/err"; then
        echo "skip - --aio: $(cat "$tmp/err")"
        expect 1 "sendfile --aio without liburing fails" "$sendfile" --aio "$s" "$tmp/aio.copy"
        check "... on one line saying why" one_line "without liburing"
else
        check "sendfile --aio to a file" test "$rc" -eq 0
        check "... identical" cmp -s "$tmp/aio.copy" "$tmp/ref"
        expect 0 "sendfile --aio=3 --stats a sparse source" "$sendfile" --aio=3 --stats "$sp" "$tmp/aio.sparse"
        check "... identical, holes as zeros" cmp -s "$tmp/aio.sparse" "$tmp/sparse"
        check "... counts its requests" grep -q '^requests: *4$' "$tmp/err"
        check "... and those the kernel copied" grep -q '^copied: *0$' "$tmp/err"
        expect 0 "sendfile --aio -n 1000 then --aio --append the rest" \
                "$sendfile" --aio -n 1000 "$s" "$tmp/aio.appended"
        expect 0 "... --append" "$sendfile" --aio=2 --append -o 1000 "$s" "$tmp/aio.appended"
        check "... identical" cmp -s "$tmp/aio.appended" "$tmp/ref"
        check "sendfile --aio=1 into a pipe is identical" \
                sh -c '"$1" --aio=1 "$2" - | cmp -s - "$3"' sh "$sendfile" "$s" "$tmp/ref"
        check "sendfile --aio=64 into a pipe is identical" \
                sh -c '"$1" --aio=64 "$2" - | cmp -s - "$3"' sh "$sendfile" "$s" "$tmp/ref"
        expect 0 "sendfile --aio from a plain path (dax:)" "$sendfile" --aio "$tmp/ref" "$tmp/aio.dax"
        check "... identical" cmp -s "$tmp/aio.dax" "$tmp/ref"
        "$sink" tcp "$tmp/aio.tcp.out" "$tmp/aio.tcp.ready" 2>"$tmp/sink.err" &
        sinkpid=$!
        pids="$pids $sinkpid"
        if wait_for "$tmp/aio.tcp.ready" "" "$sinkpid"; then
                expect 0 "sendfile --aio=64 --stats to tcp:HOST:PORT" "$sendfile" --aio=64 --stats \
                        "$s" "tcp:127.0.0.1:$(cat "$tmp/aio.tcp.ready")"
                wait "$sinkpid"
                check "... the socket received identical bytes" cmp -s "$tmp/aio.tcp.out" "$tmp/ref"
                check "... loopback copied every request" grep -q '^copied: *3$' "$tmp/err"
        else
                fail "the tcp socket sink starts" "$(cat "$tmp/sink.err")"
        fi
fi
expect 2 "sendfile --aio=0 is a usage error" "$sendfile" --aio=0 "$s" "$tmp/never"
check "... on one line" one_line "--aio depth"
expect 2 "sendfile --aio=5000 is a usage error" "$sendfile" --aio=5000 "$s" "$tmp/never"

expect 2 "a TCP port past 65535 is refused, not wrapped" "$sendfile" "$s" tcp:localhost:99999
check "... saying so" one_line "tcp:localhost:99999: the port is not a number from 1 to 65535"
expect 2 "a TCP port of 0 is refused" "$sendfile" "$s" tcp:localhost:0
expect 2 "a TCP port of 12ab is refused" "$sendfile" "$s" tcp:localhost:12ab
expect 2 "an empty TCP port is refused" "$sendfile" "$s" tcp:localhost:
expect 1 "sendfile to a socket nobody listens on" "$sendfile" "$s" "unix:$tmp/nobody"
check "... says so on one line" one_line "unix:$tmp/nobody"
expect 1 "sendfile from a missing object" "$sendfile" "$prefix-missing" "$tmp/never"
check "... prints one line naming it" one_line "$prefix-missing"
check "... and creates no destination" test ! -e "$tmp/never"
# A plain path is opened as dax:PATH, through the default window.
expect 0 "sendfile from a plain path (dax:)" "$sendfile" "$tmp/ref" "$tmp/fromdax"
check "... sends the file's bytes" cmp -s "$tmp/fromdax" "$tmp/ref"
# Plain files as cp would copy them: a sparse file, an empty one, 1 GiB,
# into a file, a pipe and a socket.
truncate -s 64M "$tmp/sparse-file"
printf 'in the middle' | dd of="$tmp/sparse-file" bs=1 seek=33554432 conv=notrunc 2>/dev/null
expect 0 "sendfile a sparse plain file" "$sendfile" "$tmp/sparse-file" "$tmp/sparse-file.copy"
check "... identical to cp's copy" cmp -s "$tmp/sparse-file.copy" "$tmp/sparse-file"
: >"$tmp/empty-file"
expect 0 "sendfile an empty plain file" "$sendfile" "$tmp/empty-file" "$tmp/empty-file.copy"
check "... gives an empty file" cmp -s "$tmp/empty-file.copy" "$tmp/empty-file"
yes 'libiomem moves a gibibyte' | head -c 1073741824 >"$tmp/big"
expect 0 "sendfile 1 GiB plain file" "$sendfile" "$tmp/big" "$tmp/big.copy"
check "... identical" cmp -s "$tmp/big.copy" "$tmp/big"
rm -f "$tmp/big.copy"
check "sendfile 1 GiB into a pipe" sh -c '"$1" "$2" - | cmp -s - "$2"' sh "$sendfile" "$tmp/big"
rm -f "$tmp/big"
if [ "$(stat -f -c %t /sys/fs/mshare 2>/dev/null)" != 4d534852 ]; then
        expect 1 "sendfile from mshare: without msharefs" "$sendfile" mshare:x "$tmp/never"
        check "... prints one line naming it" one_line "mshare:x"
        check "... and the missing mount" grep -q "/sys/fs/mshare" "$tmp/err"
fi

# ---- iomem-info ---------------------------------------------------------------------

expect 0 "iomem-info" "$info"
check "iomem-info lists memfd as usable" grep -qE '^  memfd +usable' "$tmp/out"
check "iomem-info lists shm as usable" grep -qE '^  shm +usable' "$tmp/out"
check "iomem-info shows huge pages" grep -q 'HugePages_Total' "$tmp/out"
expect 0 "iomem-info --json" "$info" --json
if have python3; then
        check "iomem-info --json is valid JSON with memfd and shm usable" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
usable = {b["name"] for b in d["backends"] if b["usable"]}
assert {"memfd", "shm"} <= usable, usable
' "$tmp/out"
else
        echo "skip - python3 is not installed: iomem-info --json not validated"
fi

# ---- iomem-remote: serve and fetch (libfabric, tcp on the loopback) -----------------

expect 2 "remote: no command" "$remote"
expect 2 "remote: an unknown command" "$remote" push "$prefix-r" 127.0.0.1:0
expect 2 "remote: an address without a port" "$remote" fetch 127.0.0.1 "$tmp/fetched"
expect 2 "remote: a memfd object to serve" "$remote" serve memfd:x 127.0.0.1:0
expect 2 "remote: --stats to serve" "$remote" serve --stats "$prefix-r" 127.0.0.1:0
rs=$prefix-remote
head -c 3000017 /dev/urandom >"$tmp/remote.src"
expect 0 "remote: an object to serve" "$mmap" create "$rs" --size 3000017
expect 0 "... filled" write_file "$rs" 0 "$tmp/remote.src"
# serve URI [OPTIONS]: a server in the background ($server), its address
# in $addr once it has printed it (read from a FIFO: no polling).
serve() {
        src=$1
        shift
        rm -f "$tmp/addr"
        mkfifo "$tmp/addr"
        "$remote" serve --once "$@" "$src" 127.0.0.1:0 >"$tmp/addr" 2>"$tmp/serve.err" &
        server=$!
        pids="$pids $server"
        addr=
        read -r addr <"$tmp/addr"
}
serve "$rs"
if [ -z "$addr" ] && grep -q "not in this build" "$tmp/serve.err"; then
        echo "skip - iomem-remote: the library was built without libfabric"
elif [ -z "$addr" ]; then
        fail "remote: serve prints its address" "$(cat "$tmp/serve.err")"
else
        pass "remote: serve prints its address ($addr)"
        expect 0 "remote: fetch into a file" "$remote" fetch -q --stats "$addr" "$tmp/fetched"
        check "... byte for byte" cmp "$tmp/remote.src" "$tmp/fetched"
        check "... --stats counts the bytes" grep -qx "bytes:   3000017" "$tmp/err"
        check "... the server stops after its one peer (--once), with 0" wait "$server"
        serve "$tmp/fetched" --writable
        expect 0 "remote: fetch a file served through dax: into an object" \
                "$remote" fetch -q "$addr" "$prefix-fetched"
        check "... byte for byte" sh -c '"$1" read "$2" 0 3000017 | cmp - "$3"' sh "$mmap" \
                "$prefix-fetched" "$tmp/remote.src"
        check "... the server stops after its one peer, with 0" wait "$server"
        expect 0 "unlink the fetched object" "$mmap" unlink "$prefix-fetched"
        expect 1 "remote: fetch from where nobody serves" "$remote" fetch -q 127.0.0.1:1 "$tmp/none"
        check "... on one line, naming the address" one_line "127.0.0.1:1"
        check "... leaving no file behind" test ! -e "$tmp/none"
fi
expect 0 "unlink $rs" "$mmap" unlink "$rs"

# ---- unlink -----------------------------------------------------------------------------

expect 0 "unlink" "$mmap" unlink "$u"
expect 1 "info after unlink fails" "$mmap" info "$u"
check "... naming the object, on one line" one_line "$u"
expect 1 "unlink of a missing object fails" "$mmap" unlink "$u"
for o in "$h" "$s" "$sp" "$z"; do
        expect 0 "unlink $o" "$mmap" unlink "$o"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
