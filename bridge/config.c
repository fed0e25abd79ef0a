/* SPDX-License-Identifier: MIT */
/*
 * The bridge's config: one directive per line, '#' starts a comment. The file is the only
 * place for NATS credentials (never the command line, where any user can read them in
 * /proc/PID/cmdline), so a file that holds a secret, or names a file that does, must be private
 * to its owner: it is refused otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_internal.h"

#define MAX_TOKENS 12

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int smem_bridge_config_new(struct smem_bridge_config **ret)
{
	struct smem_bridge_config *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->request_timeout_ms = 5000;
	c->max_pending_msgs = 65536;
	*ret = c;
	return 0;
}

void smem_bridge_config_free(struct smem_bridge_config *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nservers; i++)
		free(c->servers[i]);
	/* Secrets are wiped before they go back to the allocator. */
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->user);
	free(c->password);
	free(c->token);
	free(c->nkey_seed_file);
	free(c->tls_ca);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->broker);
	free(c->state_dir);
	free(c->client_name);
	free(c);
}

static int set_str(char **field, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A NATS subject: dot-separated tokens of printable characters, no spaces. */
static bool valid_subject(const char *s, bool allow_wildcards)
{
	size_t n = strlen(s);

	if (n == 0 || n > SMEM_BRIDGE_SUBJECT_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= ' ' || ch >= 0x7f)
			return false;
		if ((ch == '*' || ch == '>') && !allow_wildcards)
			return false;
		if (ch == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= SMEM_NAME_MAX;
}

static int add_route(struct smem_bridge_config *c, char **t, int n, char *err, size_t errlen)
{
	struct smem_bridge_route_cfg r;
	int opt;

	memset(&r, 0, sizeof(r));
	if (c->nroutes == SMEM_BRIDGE_MAX_ROUTES)
		return fail(err, errlen, "more than %d routes", SMEM_BRIDGE_MAX_ROUTES);
	/* export ring|topic NAME -> SUBJECT | import SUBJECT -> ring|topic NAME |
	 * serve rpc NAME as SUBJECT | call SUBJECT as rpc NAME */
	if (!strcmp(t[0], "export") && n >= 5 && (!strcmp(t[1], "ring") || !strcmp(t[1], "topic"))
	    && !strcmp(t[3], "->")) {
		r.kind = t[1][0] == 'r' ? SMEM_BRIDGE_EXPORT_RING : SMEM_BRIDGE_EXPORT_TOPIC;
		snprintf(r.local, sizeof(r.local), "%s", t[2]);
		snprintf(r.subject, sizeof(r.subject), "%s", t[4]);
		if (!valid_name(t[2]) || !valid_subject(t[4], false))
			return fail(err, errlen, "bad %s name or subject", t[1]);
	} else if (!strcmp(t[0], "import") && n >= 5 && !strcmp(t[2], "->") &&
		   (!strcmp(t[3], "ring") || !strcmp(t[3], "topic"))) {
		r.kind = t[3][0] == 'r' ? SMEM_BRIDGE_IMPORT_RING : SMEM_BRIDGE_IMPORT_TOPIC;
		snprintf(r.local, sizeof(r.local), "%s", t[4]);
		snprintf(r.subject, sizeof(r.subject), "%s", t[1]);
		/* A wildcard import merges senders: each keeps its own sequence. */
		if (!valid_name(t[4]) || !valid_subject(t[1], true))
			return fail(err, errlen, "bad %s name or subject", t[3]);
	} else if (!strcmp(t[0], "serve") && n == 5 && !strcmp(t[1], "rpc") &&
		   !strcmp(t[3], "as")) {
		r.kind = SMEM_BRIDGE_SERVE_RPC;
		snprintf(r.local, sizeof(r.local), "%s", t[2]);
		snprintf(r.subject, sizeof(r.subject), "%s", t[4]);
		if (!valid_name(t[2]) || !valid_subject(t[4], false))
			return fail(err, errlen, "bad channel name or subject");
		return c->routes[c->nroutes++] = r, 0;
	} else if (!strcmp(t[0], "call") && n == 5 && !strcmp(t[2], "as") &&
		   !strcmp(t[3], "rpc")) {
		r.kind = SMEM_BRIDGE_CALL_RPC;
		snprintf(r.local, sizeof(r.local), "%s", t[4]);
		snprintf(r.subject, sizeof(r.subject), "%s", t[1]);
		if (!valid_name(t[4]) || !valid_subject(t[1], false))
			return fail(err, errlen, "bad channel name or subject");
		return c->routes[c->nroutes++] = r, 0;
	} else {
		return fail(err, errlen, "unknown route syntax");
	}
	/* Ring and topic routes' options ("create" for a topic: DEPTH SAMPLE_SIZE). */
	for (opt = 5; opt < n;) {
		if (!strcmp(t[opt], "jetstream") && opt + 1 < n) {
			const char *s = t[opt + 1];

			if (strlen(s) >= sizeof(r.stream) || strpbrk(s, ".*> \t"))
				return fail(err, errlen, "bad stream name '%s'", s);
			snprintf(r.stream, sizeof(r.stream), "%s", s);
			opt += 2;
		} else if (!strcmp(t[opt], "replicas") && opt + 1 < n) {
			long v;

			if (parse_int(t[opt + 1], 1, 5, &v))
				return fail(err, errlen, "bad replicas (1..5)");
			r.replicas = (uint32_t)v;
			opt += 2;
		} else if (!strcmp(t[opt], "create") && opt + 2 < n &&
			   (r.kind == SMEM_BRIDGE_IMPORT_RING ||
			    r.kind == SMEM_BRIDGE_IMPORT_TOPIC)) {
			long nodes, size;

			if (parse_int(t[opt + 1], 2, 1 << 24, &nodes) ||
			    parse_int(t[opt + 2], 1, 64 << 20, &size))
				return fail(err, errlen, "bad create NODES SIZE");
			r.create_nodes = (uint32_t)nodes;
			r.create_size = (uint32_t)size;
			opt += 3;
		} else {
			return fail(err, errlen, "unknown route option '%s'", t[opt]);
		}
	}
	c->routes[c->nroutes++] = r;
	return 0;
}

int smem_bridge_config_line(struct smem_bridge_config *c, const char *line, char *err,
			    size_t errlen)
{
	char buf[2048], *t[MAX_TOKENS], *save = NULL, *p;
	int n = 0, rc = 0;
	long v;

	if (!c || !line)
		return -EINVAL;
	if (strlen(line) >= sizeof(buf))
		return fail(err, errlen, "line too long");
	strcpy(buf, line);
	if ((p = strchr(buf, '#')))
		*p = '\0';
	for (p = strtok_r(buf, " \t\r\n", &save); p; p = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == MAX_TOKENS)
			return fail(err, errlen, "too many words");
		t[n++] = p;
	}
	if (n == 0)
		return 0;
	if (!strcmp(t[0], "export") || !strcmp(t[0], "import") || !strcmp(t[0], "serve") ||
	    !strcmp(t[0], "call"))
		return add_route(c, t, n, err, errlen);
	if (n != 2)
		return fail(err, errlen, "'%s' takes one value", t[0]);
	if (!strcmp(t[0], "server")) {
		if (c->nservers == SMEM_BRIDGE_MAX_SERVERS)
			return fail(err, errlen, "more than %d servers", SMEM_BRIDGE_MAX_SERVERS);
		if (!(c->servers[c->nservers] = strdup(t[1])))
			return -ENOMEM;
		c->nservers++;
	} else if (!strcmp(t[0], "user")) {
		rc = set_str(&c->user, t[1]);
	} else if (!strcmp(t[0], "password")) {
		rc = set_str(&c->password, t[1]);
	} else if (!strcmp(t[0], "token")) {
		rc = set_str(&c->token, t[1]);
	} else if (!strcmp(t[0], "nkey-seed")) {
		rc = set_str(&c->nkey_seed_file, t[1]);
	} else if (!strcmp(t[0], "tls-ca")) {
		rc = set_str(&c->tls_ca, t[1]);
	} else if (!strcmp(t[0], "tls-cert")) {
		rc = set_str(&c->tls_cert, t[1]);
	} else if (!strcmp(t[0], "tls-key")) {
		rc = set_str(&c->tls_key, t[1]);
	} else if (!strcmp(t[0], "broker")) {
		rc = set_str(&c->broker, t[1]);
	} else if (!strcmp(t[0], "state-dir")) {
		rc = set_str(&c->state_dir, t[1]);
	} else if (!strcmp(t[0], "name")) {
		rc = set_str(&c->client_name, t[1]);
	} else if (!strcmp(t[0], "request-timeout-ms")) {
		if (parse_int(t[1], 1, 3600000, &v))
			return fail(err, errlen, "bad request-timeout-ms");
		c->request_timeout_ms = (int)v;
	} else if (!strcmp(t[0], "send-asap")) {
		if (strcmp(t[1], "yes") && strcmp(t[1], "no"))
			return fail(err, errlen, "send-asap takes yes or no");
		c->send_asap = !strcmp(t[1], "yes");
	} else if (!strcmp(t[0], "max-pending")) {
		if (parse_int(t[1], 1, 1 << 24, &v))
			return fail(err, errlen, "bad max-pending");
		c->max_pending_msgs = (int)v;
	} else {
		return fail(err, errlen, "unknown directive '%s'", t[0]);
	}
	return rc;
}

/* A file that holds or is a secret: owned by us, no access for group or others. */
static int private_file(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		if (err && errlen)
			snprintf(err, errlen, "%s holds secrets but is not private to its owner "
				 "(mode %03o, uid %u): chmod 600", path,
				 (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
		return -EACCES;
	}
	return 0;
}

static int private_path(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), rc;

	if (fd < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	rc = private_file(fd, path, err, errlen);
	close(fd);
	return rc;
}

int smem_bridge_config_load(const char *path, struct smem_bridge_config **ret, char *err,
			    size_t errlen)
{
	struct smem_bridge_config *c = NULL;
	char line[2048], why[256];
	int fd, rc, lineno = 0;
	FILE *f;

	if (!path || !ret)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	rc = smem_bridge_config_new(&c);
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = fail(err, errlen, "%s:%d: line too long", path, lineno);
			break;
		}
		why[0] = '\0';
		rc = smem_bridge_config_line(c, line, why, sizeof(why));
		if (rc && err && errlen)
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
	}
	/* The check happens after parsing, on the fd we read: no window to swap the file. */
	if (rc == 0 && (c->password || c->token || c->nkey_seed_file || c->tls_key))
		rc = private_file(fd, path, err, errlen);
	if (rc == 0 && c->nkey_seed_file)
		rc = private_path(c->nkey_seed_file, err, errlen);
	if (rc == 0 && c->tls_key)
		rc = private_path(c->tls_key, err, errlen);
	if (c)
		explicit_bzero(line, sizeof(line));
	fclose(f);
	if (rc) {
		smem_bridge_config_free(c);
		return rc;
	}
	*ret = c;
	return 0;
}
