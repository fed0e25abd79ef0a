/* SPDX-License-Identifier: MIT */
/*
 * smemctl's parts: the command line and output (smemctl.c), what a name holds as read from
 * shared memory (smemctl_inspect.c), and the JSON helpers both use (smemctl_json.c). Every
 * result is built as a json-c object first; the human output is a rendering of the same tree,
 * so the two views never disagree.
 */
#ifndef SMEMCTL_H
#define SMEMCTL_H

#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>

#include "internal.h"

/* smemctl_json.c ------------------------------------------------------------------------- */

/*
 * A name as JSON: the string itself when it is valid UTF-8; otherwise every invalid byte
 * becomes U+FFFD and the exact bytes are added as @key "_hex" (so nothing is lost).
 */
void sc_add_name(struct json_object *obj, const char *key, const char *name);
/* Shorthands for json_object_object_add() with a fresh value. */
void sc_add_u64(struct json_object *obj, const char *key, uint64_t v);
void sc_add_i64(struct json_object *obj, const char *key, int64_t v);
void sc_add_bool(struct json_object *obj, const char *key, bool v);
void sc_add_str(struct json_object *obj, const char *key, const char *v);
/* {"errno": 2, "code": "ENOENT", "message": "no such name"} for a negative errno. */
struct json_object *sc_errno_json(int err);
/* One document on one line (compact, '/' not escaped), then a newline. */
void sc_print_json(FILE *f, struct json_object *doc);
/* The tree as indented "key: value" lines, for people. Bytes that are not printable UTF-8 are
 * written as \xNN. */
void sc_print_human(FILE *f, struct json_object *doc, int indent);
/* @s for a terminal: valid printable UTF-8 as is, anything else as \xNN. Returns columns. */
int sc_print_str(FILE *f, const char *s);

/* smemctl_inspect.c ---------------------------------------------------------------------- */

/* The broker's record of a name. */
struct json_object *sc_entry_json(const struct smem__entry_info *e);
/*
 * Everything about the name @e describes: the broker's record ("broker"), the region header
 * as an opener validates it ("header", or "header_error"), the participants, and what the
 * kind holds ("ring", "lock", "rpc", ...). Values from shared memory are checked as the
 * library checks them; what fails is reported ("valid": false, "garbage": ...), never used
 * as a bound. @broker is the address to open through.
 */
struct json_object *sc_inspect(const char *broker, const struct smem__entry_info *e);

/* smemctl_bridge.c ----------------------------------------------------------------------- */

/*
 * The running bridges of @broker (smem-bridge's counter regions) as a JSON array: per bridge
 * its name, pid, reconnects, times and routes with their counters, or "error" when its region
 * does not validate. 0 and *ret, or the broker's errors.
 */
int sc_bridges(const char *broker, struct json_object **ret);

#endif
