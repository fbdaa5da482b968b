/* SPDX-License-Identifier: MIT */
/*
 * guard_overflow - a guard page catching a buffer overflow.
 *
 * A child process writes one byte past the end of a vmalloc() area; the
 * guard page behind the area turns that into SIGSEGV at once, instead of
 * silently corrupting whatever lies next.  The parent reports what
 * happened.  Exit status 0 when the overflow was caught.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vmap.h>

int main(void)
{
	size_t size = 3 * (size_t)sysconf(_SC_PAGESIZE);
	char *buf = vmalloc(size);
	int status;
	pid_t pid;

	if (!buf) {
		perror("vmalloc");
		return 1;
	}
	memset(buf, 'x', size); /* every byte of the area is usable */
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		signal(SIGSEGV,
		       SIG_DFL); /* the default action, even under a sanitizer */
		buf[size] = '!'; /* one byte too far */
		_exit(0);
	}
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
		printf("guard page caught a write one byte past a %zu-byte area\n",
		       size);
		vfree(buf);
		return 0;
	}
	printf("the overflow was not caught\n");
	return 1;
}
