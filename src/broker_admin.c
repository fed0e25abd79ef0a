/* SPDX-License-Identifier: MIT */
/*
 * Administration (smemctl): HELLO, STAT, LIST and STOP over a one-shot connection that never
 * auto-starts a broker. See broker.h for the other broker files.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"

static int admin_connect(const char *addr, uint32_t *seq, struct smem__broker_info *info)
{
	struct smem__addr a;
	int fd, err;

	err = smem__addr_resolve(addr, &a);
	if (err)
		return err;
	fd = smem__broker_connect(&a, 0);
	if (fd < 0)
		return fd;
	err = smem__broker_greet(fd, seq, info);
	if (err) {
		struct smem__req hello = { .op = SMEM_OP_HELLO };

		close(fd);
		return smem__broker_error(&a, &hello, err);
	}
	return fd;
}

/* One request on a connection from admin_connect() to @addr, its failure explained. */
static int admin_xfer(const char *addr, int fd, uint32_t *seq, struct smem__req *r)
{
	struct smem__addr a;
	bool broken;
	int err;

	err = smem__broker_xfer(fd, seq, r, &broken);
	if (err && smem__addr_resolve(addr, &a) == 0)
		smem__broker_error(&a, r, err);
	return err;
}

int smem__broker_hello(const char *addr, struct smem__broker_info *out)
{
	struct smem__broker_info info;
	uint32_t seq = 0;
	int fd;

	fd = admin_connect(addr, &seq, &info);
	if (fd < 0)
		return fd;
	close(fd);
	if (out)
		*out = info;
	return 0;
}

int smem__broker_stat(const char *addr, const char *name, struct smem__entry_info *out)
{
	unsigned char rep[SMEM__ENTRY_REPLY_MAX];
	struct smem_msg_name m = { 0 };
	struct smem__req r = { .op = SMEM_OP_STAT, .p1 = &m, .l1 = sizeof(m), .send_fd = -1,
			       .rbuf = rep, .rcap = sizeof(rep) };
	struct smem__entry_info e;
	uint32_t seq = 0;
	int fd, err;

	err = smem__name_check(name);
	if (err)
		return err;
	m.name_len = (uint16_t)strlen(name);
	r.p2 = name;
	r.l2 = m.name_len;
	fd = admin_connect(addr, &seq, NULL);
	if (fd < 0)
		return fd;
	err = admin_xfer(addr, fd, &seq, &r);
	close(fd);
	if (!err)
		err = smem__entry_parse(rep, r.rlen, &e, NULL);
	if (!err && out)
		*out = e;
	return err;
}

int smem__broker_list(const char *addr, int (*fn)(const struct smem__entry_info *e, void *arg),
		      void *arg)
{
	struct smem_msg_list m = { .after = 0 };
	struct smem_msg_list_reply lr;
	struct smem__entry_info e;
	unsigned char *rep;
	uint32_t seq = 0, i;
	int fd, err = 0;

	rep = malloc(SMEM_PROTO_MAX_REPLY);
	if (!rep)
		return -ENOMEM;
	fd = admin_connect(addr, &seq, NULL);
	if (fd < 0) {
		free(rep);
		return fd;
	}
	do {
		struct smem__req r = { .op = SMEM_OP_LIST, .p1 = &m, .l1 = sizeof(m), .send_fd = -1,
				       .rbuf = rep, .rcap = SMEM_PROTO_MAX_REPLY };
		size_t off, used;

		err = admin_xfer(addr, fd, &seq, &r);
		if (err)
			break;
		if (r.rlen < sizeof(lr)) {
			err = -EPROTO;
			break;
		}
		memcpy(&lr, rep, sizeof(lr));
		off = sizeof(lr);
		for (i = 0; i < lr.count && !err; i++) {
			err = smem__entry_parse(rep + off, r.rlen - off, &e, &used);
			if (err)
				break;
			off += used;
			m.after = e.id;
			err = fn(&e, arg);
		}
		if (!err && lr.more && lr.count == 0)
			err = -EPROTO;	/* would never end */
	} while (!err && lr.more);
	close(fd);
	free(rep);
	return err;
}

int smem__broker_stop(const char *addr)
{
	struct smem__req r = { .op = SMEM_OP_STOP, .send_fd = -1 };
	uint32_t seq = 0;
	int fd, err;

	fd = admin_connect(addr, &seq, NULL);
	if (fd < 0)
		return fd;
	err = admin_xfer(addr, fd, &seq, &r);
	close(fd);
	return err;
}
