/* SPDX-License-Identifier: MIT */
/* smemctl: JSON values through json-c, and their rendering for people (see smemctl.h). */
#include <string.h>

#include "smemctl.h"

/* Length of the valid UTF-8 sequence at @s (1..4), or 0 if the bytes there are not one. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;	/* also stops at the NUL */
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void sc_add_name(struct json_object *obj, const char *key, const char *name)
{
	const unsigned char *s = (const unsigned char *)name;
	char fixed[4 * (SMEM_NAME_MAX + 1)], hex[2 * SMEM_NAME_MAX + 1], hkey[64];
	size_t i = 0, o = 0, n;
	bool valid = true;

	while (s[i] && o + 4 < sizeof(fixed)) {
		n = utf8_seq(s + i);
		if (n) {
			memcpy(fixed + o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);	/* U+FFFD */
			o += 3;
			i++;
			valid = false;
		}
	}
	fixed[o] = 0;
	json_object_object_add(obj, key, json_object_new_string(fixed));
	if (valid)
		return;
	for (i = 0, o = 0; s[i] && o + 2 < sizeof(hex); i++, o += 2)
		snprintf(hex + o, 3, "%02x", s[i]);
	snprintf(hkey, sizeof(hkey), "%s_hex", key);
	json_object_object_add(obj, hkey, json_object_new_string(hex));
}

void sc_add_u64(struct json_object *obj, const char *key, uint64_t v)
{
	json_object_object_add(obj, key, json_object_new_uint64(v));
}

void sc_add_i64(struct json_object *obj, const char *key, int64_t v)
{
	json_object_object_add(obj, key, json_object_new_int64(v));
}

void sc_add_bool(struct json_object *obj, const char *key, bool v)
{
	json_object_object_add(obj, key, json_object_new_boolean(v));
}

void sc_add_str(struct json_object *obj, const char *key, const char *v)
{
	json_object_object_add(obj, key, json_object_new_string(v));
}

struct json_object *sc_errno_json(int err)
{
	struct json_object *o = json_object_new_object();
	const char *code = strerrorname_np(err < 0 ? -err : err);

	sc_add_i64(o, "errno", err < 0 ? -err : err);
	sc_add_str(o, "code", code ? code : "unknown");
	sc_add_str(o, "message", smem_strerror(err));
	return o;
}

void sc_print_json(FILE *f, struct json_object *doc)
{
	fputs(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
					     JSON_C_TO_STRING_NOSLASHESCAPE), f);
	fputc('\n', f);
}

int sc_print_str(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	int cols = 0;
	size_t n;

	while (*s) {
		n = utf8_seq(s);
		if (n == 1 && *s >= 0x20 && *s != 0x7f) {
			fputc(*s, f);
			cols++;
		} else if (n > 1 && !(n == 2 && s[0] == 0xc2 && s[1] < 0xa0)) {
			fwrite(s, 1, n, f);	/* C1 controls (U+0080..9F) are escaped below */
			cols++;
		} else {
			n = 1;
			cols += fprintf(f, "\\x%02x", *s);
		}
		s += n;
	}
	return cols;
}

static void print_scalar(FILE *f, struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		fputs("-", f);
		break;
	case json_type_string:
		sc_print_str(f, json_object_get_string(v));
		break;
	default:
		fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), f);
		break;
	}
}

static bool is_container(struct json_object *v)
{
	json_type t = json_object_get_type(v);

	return t == json_type_object || t == json_type_array;
}

void sc_print_human(FILE *f, struct json_object *doc, int indent)
{
	size_t i, n;

	if (json_object_get_type(doc) == json_type_array) {
		n = json_object_array_length(doc);
		for (i = 0; i < n; i++) {
			struct json_object *v = json_object_array_get_idx(doc, i);

			fprintf(f, "%*s[%zu]%s", indent, "", i, is_container(v) ? "\n" : " ");
			if (is_container(v))
				sc_print_human(f, v, indent + 2);
			else {
				print_scalar(f, v);
				fputc('\n', f);
			}
		}
		return;
	}
	json_object_object_foreach(doc, key, val) {
		fprintf(f, "%*s%s:", indent, "", key);
		if (is_container(val) && (json_object_get_type(val) == json_type_object ?
					  (size_t)json_object_object_length(val) :
					  json_object_array_length(val))) {
			fputc('\n', f);
			sc_print_human(f, val, indent + 2);
		} else if (is_container(val)) {
			fputs(" (none)\n", f);
		} else {
			fputc(' ', f);
			print_scalar(f, val);
			fputc('\n', f);
		}
	}
}
