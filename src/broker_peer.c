/* SPDX-License-Identifier: MIT */
/*
 * Who answers at a broker address. A client hands the broker its memfds (CREATE, and every
 * hold again when it re-registers) and believes its replies (the fds of OPEN, the owner and
 * mode of a name), so before anything is sent on a fresh connection the kernel's record of the
 * peer must name a uid we trust (docs/SECURITY.md):
 *
 *   - our own effective uid, or root: they can read our memory anyway;
 *   - at a path address only, the uid this process found there first (it is pinned for the
 *     life of the process): the socket's directory decided who could bind it then, so a
 *     different uid answering later is somebody who took the address over, not a restart of
 *     the broker we used.
 *
 * Abstract addresses have no file permissions: anybody can bind one first, so a first answer
 * proves nothing there and nothing is pinned; only our uid and root are believed.
 *
 * SO_PEERCRED gives the credentials of whoever called listen(2) on the other end, which for
 * socket activation is the service manager (root) and otherwise the broker itself. A peer we
 * refuse gets nothing but the connect: the caller closes the socket and returns -EPERM.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"

struct pin {
	struct pin *next;
	struct sockaddr_un sun;
	socklen_t len;
	uid_t uid;
};

/* Guards g_pins. Held only around a list walk or insert, never across a call out. */
static pthread_mutex_t g_pin_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_pin_once = PTHREAD_ONCE_INIT;
/* Never freed: a pin lasts as long as the process (reachable, so no leak report). */
static struct pin *g_pins;

/* fork() with g_pin_lock held by another thread would leave it locked forever in the child. */
static void pin_prepare(void)
{
	pthread_mutex_lock(&g_pin_lock);
}

static void pin_release(void)
{
	pthread_mutex_unlock(&g_pin_lock);
}

static void pin_init(void)
{
	pthread_atfork(pin_prepare, pin_release, pin_release);
}

/*
 * Whether @uid may answer at path address @a: the pinned uid, or (first answer) pin @uid.
 * Without memory for a pin, nothing new is believed.
 */
static bool pin_check(const struct smem__addr *a, uid_t uid)
{
	struct pin *p;
	bool ok;

	pthread_once(&g_pin_once, pin_init);
	pthread_mutex_lock(&g_pin_lock);
	for (p = g_pins; p; p = p->next)
		if (p->len == a->len && memcmp(&p->sun, &a->sun, a->len) == 0)
			break;
	if (p) {
		ok = p->uid == uid;
	} else {
		p = calloc(1, sizeof(*p));
		ok = p != NULL;
		if (p) {
			p->sun = a->sun;
			p->len = a->len;
			p->uid = uid;
			p->next = g_pins;
			g_pins = p;
		}
	}
	pthread_mutex_unlock(&g_pin_lock);
	return ok;
}

int smem__broker_trust(int fd, const struct smem__addr *a)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uid_t me = geteuid();
	bool ok;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
		return smem__error(-EPERM, "broker at %s: cannot tell who it runs as (SO_PEERCRED)",
				   a->text);
	/*
	 * Even our own uid and root are pinned at a path: a later broker of another uid there is
	 * an impostor whichever uid came first.
	 */
	ok = a->abstract ? false : pin_check(a, cred.uid);
	if (cred.uid == me || cred.uid == 0 || ok)
		return 0;
	return smem__error(-EPERM, "broker at %s runs as uid %u, which this process does not trust "
			   "(not its own uid %u, not root, %s): nothing was sent", a->text,
			   (unsigned)cred.uid, (unsigned)me, a->abstract ?
			   "and an abstract address proves nothing" :
			   "not the uid first found at that path");
}
