/* SPDX-License-Identifier: MIT */
/*
 * The msharefs test double keeps the kernel's rules: each refusal here is
 * one the msharefs postings document, with the kernel's errno. The
 * backend's suites trust the double only as far as these pass. The calls
 * go through the syscall table, as the backend's do.
 */
#include "common.h"
#include "msharefs_double.h"
#include "platform.h"
#include "syscalls.h"

#include <fcntl.h>
#include <linux/ioctl.h>
#include <sys/mman.h>
#include <sys/statfs.h>

#define ALIGN (UINT64_C(2) << 20)

/* The kernel's structures and numbers, written out independently of the
 * backend's and the double's definitions. */
struct k_create {
        uint64_t where, size, offset;
        uint32_t prot, flags, fd;
};
struct k_info {
        uint64_t start, size;
};
#define K_OLD_GET_SIZE       0x80107800ul
#define K_OLD_SET_SIZE       0x40107801ul
#define K_OLD_CREATE_MAPPING 0x40287802ul
#define K_NEW_CREATE_MAPPING 0x40287800ul
#define K_NEW_UNMAP          0x40107801ul /* the older SET_SIZE's number */

static int region_fd;

/* A fresh region file in the double's mount for ABI abi. */
static void setup(int abi)
{
        if (msharefs_real_kernel()) {
                printf("/sys/fs/mshare is a real msharefs: the double is not what runs there\n");
                exit(TEST_SKIP);
        }
        ck_assert_int_eq(msharefs_double_install(abi, ALIGN), 0);
        static int seq;
        char path[512];
        snprintf(path, sizeof path, "%s/r%d-%d", msharefs_double_dir(), (int)getpid(), seq++);
        region_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(region_fd, 0);
}

static int create(unsigned long req, uint64_t where, uint64_t size, int flags, int fd)
{
        struct k_create c = { .where = where, .size = size, .prot = PROT_READ | PROT_WRITE,
                              .flags = (uint32_t)flags, .fd = (uint32_t)fd };
        return iom_sys.ioctl(region_fd, req, &c);
}

#define ck_assert_errno(call, e)                                                        \
        do {                                                                            \
                errno = 0;                                                              \
                long r_ = (long)(call);                                                 \
                ck_assert_msg(r_ == -1 && errno == (e), "%s: %ld, errno %d (want %d)",  \
                              #call, r_, errno, e);                                     \
        } while (0)

START_TEST(numbers_and_layouts_are_the_kernels)
{
        ck_assert_uint_eq(sizeof(struct k_create), 40);
        ck_assert_uint_eq(sizeof(struct k_info), 16);
        ck_assert_uint_eq(_IOR('x', 0, struct k_info), K_OLD_GET_SIZE);
        ck_assert_uint_eq(_IOW('x', 1, struct k_info), K_OLD_SET_SIZE);
        ck_assert_uint_eq(_IOW('x', 2, struct k_create), K_OLD_CREATE_MAPPING);
        ck_assert_uint_eq(_IOW('x', 0, struct k_create), K_NEW_CREATE_MAPPING);
        ck_assert_uint_eq(K_OLD_SET_SIZE, K_NEW_UNMAP);
}
END_TEST

START_TEST(mount_is_recognised_by_magic_and_publishes_alignment)
{
        setup(2);
        struct iom_fsinfo sf;
        ck_assert_int_eq(iom_sys.statfs(msharefs_double_dir(), &sf), 0);
        ck_assert_int_eq(sf.kind, IOM_FS_MSHARE);
        ck_assert_int_eq(iom_sys.fstatfs(region_fd, &sf), 0);
        ck_assert_int_eq(sf.kind, IOM_FS_MSHARE);
        char path[512], text[32] = { 0 };
        snprintf(path, sizeof path, "%s/mshare_info", msharefs_double_dir());
        FILE *fp = fopen(path, "r");
        ck_assert_ptr_nonnull(fp);
        ck_assert_ptr_nonnull(fgets(text, sizeof text, fp));
        fclose(fp);
        ck_assert_uint_eq(strtoull(text, NULL, 10), ALIGN);
        /* Anything else is not msharefs. */
        ck_assert_int_eq(iom_sys.statfs("/", &sf), 0);
        ck_assert_int_ne(sf.kind, IOM_FS_MSHARE);
}
END_TEST

START_TEST(v2_size_is_aligned_and_set_once)
{
        setup(2);
        ck_assert_errno(iom_sys.ftruncate(region_fd, ALIGN + 4096), EINVAL);
        ck_assert_errno(iom_sys.ftruncate(region_fd, 0), EINVAL);
        ck_assert_int_eq(iom_sys.ftruncate(region_fd, 2 * ALIGN), 0);
        ck_assert_errno(iom_sys.ftruncate(region_fd, 4 * ALIGN), EINVAL);
        struct stat st;
        ck_assert_int_eq(iom_sys.fstat(region_fd, &st), 0);
        ck_assert_uint_eq(st.st_size, 2 * ALIGN);
        /* The older ABI's GET_SIZE is unknown here: a safe probe. */
        struct k_info info;
        ck_assert_errno(iom_sys.ioctl(region_fd, K_OLD_GET_SIZE, &info), ENOTTY);
}
END_TEST

START_TEST(v2_create_mapping_rules)
{
        setup(2);
        /* Not sized yet. */
        ck_assert_errno(create(K_NEW_CREATE_MAPPING, 0, ALIGN, MAP_SHARED | MAP_FIXED, -1), EINVAL);
        ck_assert_int_eq(iom_sys.ftruncate(region_fd, ALIGN), 0);
        ck_assert_errno(create(K_NEW_CREATE_MAPPING, 0, ALIGN, MAP_SHARED, -1), EINVAL);
        ck_assert_errno(create(K_NEW_CREATE_MAPPING, 0, ALIGN, MAP_FIXED, -1), EINVAL);
        ck_assert_errno(create(K_NEW_CREATE_MAPPING, 4096, ALIGN, MAP_SHARED | MAP_FIXED, -1), EINVAL);
        /* v2 maps anonymous memory only. */
        int mfd = memfd_create("double", MFD_CLOEXEC);
        ck_assert_int_ge(mfd, 0);
        ck_assert_errno(create(K_NEW_CREATE_MAPPING, 0, ALIGN, MAP_SHARED | MAP_FIXED, mfd), EINVAL);
        ck_assert_int_eq(create(K_NEW_CREATE_MAPPING, 0, ALIGN, MAP_SHARED | MAP_FIXED, -1), 0);
        close(mfd);
}
END_TEST

START_TEST(v3_maps_files)
{
        setup(3);
        ck_assert_int_eq(iom_sys.ftruncate(region_fd, ALIGN), 0);
        int mfd = memfd_create("double", MFD_CLOEXEC);
        ck_assert_int_ge(mfd, 0);
        ck_assert_int_eq(ftruncate(mfd, ALIGN), 0);
        ck_assert_errno(create(K_NEW_CREATE_MAPPING, 0, ALIGN, MAP_SHARED, mfd), EINVAL);
        ck_assert_int_eq(create(K_NEW_CREATE_MAPPING, 0, ALIGN, MAP_SHARED | MAP_FIXED, mfd), 0);
        close(mfd);
}
END_TEST

START_TEST(mmap_covers_the_whole_region)
{
        setup(2);
        ck_assert_ptr_eq(iom_sys.mmap(NULL, ALIGN, PROT_READ, MAP_SHARED, region_fd, 0), MAP_FAILED);
        ck_assert_int_eq(iom_sys.ftruncate(region_fd, 2 * ALIGN), 0);
        ck_assert_ptr_eq(iom_sys.mmap(NULL, ALIGN, PROT_READ, MAP_SHARED, region_fd, 0), MAP_FAILED);
        ck_assert_int_eq(errno, EINVAL);
        ck_assert_ptr_eq(iom_sys.mmap(NULL, 2 * ALIGN, PROT_READ, MAP_PRIVATE, region_fd, 0),
                         MAP_FAILED);
        ck_assert_ptr_eq(iom_sys.mmap(NULL, ALIGN, PROT_READ, MAP_SHARED, region_fd, (off_t)ALIGN),
                         MAP_FAILED);
        char *p = iom_sys.mmap(NULL, 2 * ALIGN, PROT_READ | PROT_WRITE, MAP_SHARED, region_fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        /* Different processes see one region, wherever they map it. */
        p[5] = 42;
        pid_t pid = fork();
        if (pid == 0) {
                char *q = iom_sys.mmap(NULL, 2 * ALIGN, PROT_READ, MAP_SHARED, region_fd, 0);
                _exit(q != MAP_FAILED && q[5] == 42 ? 0 : 1);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        munmap(p, 2 * ALIGN);
}
END_TEST

START_TEST(v1_set_size_and_fixed_address)
{
        setup(1);
        /* The older ABI sizes with SET_SIZE only. */
        ck_assert_errno(iom_sys.ftruncate(region_fd, ALIGN), EINVAL);
        char *r = mmap(NULL, 3 * ALIGN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(r, MAP_FAILED);
        uint64_t start = ((uint64_t)(uintptr_t)r + ALIGN - 1) & ~(ALIGN - 1);
        struct k_info info = { .start = start + 4096, .size = ALIGN };
        ck_assert_errno(iom_sys.ioctl(region_fd, K_OLD_SET_SIZE, &info), EINVAL);
        info = (struct k_info){ .start = start, .size = ALIGN + 4096 };
        ck_assert_errno(iom_sys.ioctl(region_fd, K_OLD_SET_SIZE, &info), EINVAL);
        info = (struct k_info){ .start = start, .size = ALIGN };
        ck_assert_int_eq(iom_sys.ioctl(region_fd, K_OLD_SET_SIZE, &info), 0);
        ck_assert_errno(iom_sys.ioctl(region_fd, K_OLD_SET_SIZE, &info), EINVAL);
        struct k_info got = { 0 };
        ck_assert_int_eq(iom_sys.ioctl(region_fd, K_OLD_GET_SIZE, &got), 0);
        ck_assert_uint_eq(got.start, start);
        ck_assert_uint_eq(got.size, ALIGN);
        /* Mapped at its address only. */
        ck_assert_ptr_eq(iom_sys.mmap(NULL, ALIGN, PROT_READ, MAP_SHARED, region_fd, 0), MAP_FAILED);
        void *at = (void *)(uintptr_t)start;
        ck_assert_ptr_eq(iom_sys.mmap(at, ALIGN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                                      region_fd, 0), at);
        /* CREATE_MAPPING takes the absolute address, inside the region. */
        ck_assert_errno(create(K_OLD_CREATE_MAPPING, 0, ALIGN, MAP_SHARED | MAP_FIXED, -1), EINVAL);
        ck_assert_errno(create(K_OLD_CREATE_MAPPING, start, ALIGN, MAP_SHARED, -1), EINVAL);
        ck_assert_int_eq(create(K_OLD_CREATE_MAPPING, start, ALIGN, MAP_SHARED | MAP_FIXED, -1), 0);
        /* The later ABI's numbers mean nothing here but SET_SIZE. */
        ck_assert_errno(create(K_NEW_CREATE_MAPPING, 0, ALIGN, MAP_SHARED | MAP_FIXED, -1), ENOTTY);
        munmap(r, 3 * ALIGN);
}
END_TEST

START_TEST(v3_owner_exit_takes_the_memory)
{
        setup(3);
        if (!msharefs_double_watches_owners()) {
                printf("no pidfd_open(2) here (valgrind?): the double cannot see owners exit\n");
                return;
        }
        int up[2], down[2]; /* owner -> parent, parent -> owner */
        ck_assert_int_eq(pipe(up), 0);
        ck_assert_int_eq(pipe(down), 0);
        pid_t pid = fork();
        if (pid == 0) {
                /* The owner: sizes the region and writes to it, then waits
                 * for the parent to have mapped it, then exits. */
                char c;
                if (iom_sys.ftruncate(region_fd, ALIGN))
                        _exit(1);
                char *p = iom_sys.mmap(NULL, ALIGN, PROT_READ | PROT_WRITE, MAP_SHARED, region_fd, 0);
                if (p == MAP_FAILED)
                        _exit(2);
                p[0] = 7;
                if (write(up[1], "", 1) != 1 || read(down[0], &c, 1) != 1)
                        _exit(3);
                _exit(0);
        }
        char c;
        ck_assert_int_eq(read(up[0], &c, 1), 1);
        char *p = iom_sys.mmap(NULL, ALIGN, PROT_READ, MAP_SHARED, region_fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(p[0], 7);
        ck_assert_int_eq(write(down[1], "", 1), 1);
        ck_assert_int_eq(test_wait(pid), 0);
        msharefs_double_settle(region_fd);
        /* Touching it now faults; reading it safely says so. */
        uint64_t v;
        struct iovec l = { &v, sizeof v }, r = { p, sizeof v };
        ck_assert_int_eq(process_vm_readv(getpid(), &l, 1, &r, 1, 0), -1);
        ck_assert_int_eq(errno, EFAULT);
        munmap(p, ALIGN);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("msharefs double");
        TCase *t = tcase_create("rules");
        tcase_add_test(t, numbers_and_layouts_are_the_kernels);
        tcase_add_test(t, mount_is_recognised_by_magic_and_publishes_alignment);
        tcase_add_test(t, v2_size_is_aligned_and_set_once);
        tcase_add_test(t, v2_create_mapping_rules);
        tcase_add_test(t, v3_maps_files);
        tcase_add_test(t, mmap_covers_the_whole_region);
        tcase_add_test(t, v1_set_size_and_fixed_address);
        tcase_add_test(t, v3_owner_exit_takes_the_memory);
        suite_add_tcase(s, t);
        return test_run(s);
}
