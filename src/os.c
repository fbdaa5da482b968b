/* SPDX-License-Identifier: MIT */
/*
 * os.c - the operating-system layer (contract in os.h).  Its only state
 * is an atomic counter handing out per-thread indexes.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fault.h"
#include "os.h"

unsigned os_nr_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

unsigned os_usable_cpus(void)
{
	cpu_set_t set;

	if (!sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	return os_nr_cpus();
}

unsigned os_current_cpu(void)
{
	static atomic_uint next_index;
	static _Thread_local int thread_index = -1;
	int cpu = sched_getcpu();

	if (cpu >= 0)
		return (unsigned)cpu;
	if (thread_index < 0)
		thread_index = (int)atomic_fetch_add(&next_index, 1);
	return (unsigned)thread_index;
}

long os_thread_id(void)
{
	return syscall(SYS_gettid);
}

int os_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	if (fault_hit(FAULT_THREAD))
		return -EAGAIN;
	return -pthread_create(thread, NULL, fn, arg);
}

int os_stream_done(FILE *out)
{
	return fflush(out) || ferror(out) ? -EIO : 0;
}

int os_cancel_off(void)
{
	int old;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	return old;
}

void os_cancel_restore(int state)
{
	pthread_setcancelstate(state, NULL);
}

void os_futex_wait(atomic_int *word, int val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void os_futex_wake(atomic_int *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void *os_reserve(size_t len)
{
	void *p = mmap(NULL, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void *os_reserve_open(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Not in every libc's headers yet: the values are the kernel's ABI. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif

int os_guard(void *addr, size_t len, int install)
{
	return madvise(addr, len,
		       install ? MADV_GUARD_INSTALL : MADV_GUARD_REMOVE) ?
		       -errno :
		       0;
}

void os_unreserve(void *addr, size_t len)
{
	munmap(addr, len);
}

int os_protect(void *addr, size_t len, int readwrite)
{
	return mprotect(addr, len,
			readwrite ? PROT_READ | PROT_WRITE : PROT_NONE) ?
		       -errno :
		       0;
}

int os_remap(void *addr, size_t len, int open)
{
	void *p = mmap(addr, len, open ? PROT_READ | PROT_WRITE : PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		       -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

int os_discard(void *addr, size_t len, int lazily)
{
	return madvise(addr, len, lazily ? MADV_FREE : MADV_DONTNEED) ? -errno :
									0;
}

int os_pages_create(size_t len)
{
	int fd = memfd_create("vmap-pages", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len)) {
		close(fd);
		return -ENOMEM;
	}
	return fd;
}

int os_pages_release(int fd, uint64_t off, uint64_t len)
{
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)off, (off_t)len) ?
		       -errno :
		       0;
}

void os_pages_close(int fd)
{
	close(fd);
}

int os_map_pages(void *addr, size_t len, int fd, uint64_t off)
{
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_FIXED, fd, (off_t)off);

	return p == MAP_FAILED ? -errno : 0;
}

/*
 * The kernel reads our own memory for us and reports an unreadable page
 * as EFAULT instead of a signal (process_vm_readv on ourselves).
 */
int os_copy_nofault(void *dst, const void *src, size_t len)
{
	struct iovec local = { dst, len }, remote = { (void *)src, len };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

	return n == (ssize_t)len ? 0 : -EFAULT;
}
