/* SPDX-License-Identifier: MIT */
/* lock.c - creation of struct vlock (see lock.h). */
#include "lock.h"

int vlock_init(struct vlock *l)
{
	pthread_mutexattr_t attr;
	int rc;

	atomic_init(&l->acquired, 0);
	rc = pthread_mutexattr_init(&attr);
	if (rc)
		return -rc;
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
	rc = pthread_mutex_init(&l->mutex, &attr);
	pthread_mutexattr_destroy(&attr);
	return -rc;
}

void vlock_destroy(struct vlock *l)
{
	pthread_mutex_destroy(&l->mutex);
}
