/* settings.c: the cluster settings in memory and in the catalog's LevelDB.
 * See settings.h.
 *
 * A change is written (synced) before memory changes, under the lock, so
 * what readers see is always on disk, and two concurrent sets of one key
 * end in memory as they ended on disk. */
#include "meta/settings.h"

#include "cluster/item.h"
#include "cluster/log.h"
#include "cluster/net.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

#define SETTINGS_KEY_MAX_BYTES 64
#define SETTINGS_RECORD_KEY_MAX_BYTES (SETTINGS_RECORD_PREFIX_BYTES + SETTINGS_KEY_MAX_BYTES)

enum settings_unit {
	SETTINGS_UNIT_BYTES,
	SETTINGS_UNIT_RATE,
	SETTINGS_UNIT_SECONDS,
	SETTINGS_UNIT_MILLISECONDS,
};

struct setting_spec {
	const char *key;
	enum settings_unit unit;
	uint64_t min, max;
	const char *description;
};

/* Indexed by enum setting_id. Keys stay the same forever: they are on disk. */
static const struct setting_spec settings_specs[SETTING_COUNT] = {
	[SETTING_ITEM_MAX_BYTES] = {
		"item.max_bytes", SETTINGS_UNIT_BYTES, 1, NET_MESSAGE_MAX_BYTES / 2,
		"largest item body the cluster accepts; a larger write fails with EFBIG",
	},
	[SETTING_SPLIT_BYTES] = {
		"split.bytes", SETTINGS_UNIT_BYTES, 64ull * 1024, 1ull << 40,
		"a partition holding more item bytes than this splits",
	},
	[SETTING_SPLIT_RATE] = {
		"split.rate", SETTINGS_UNIT_RATE, 1, 10000000,
		"a partition serving more reads + writes per second than this for "
		"split.window_s splits for consumption",
	},
	[SETTING_SPLIT_WINDOW_S] = {
		"split.window_s", SETTINGS_UNIT_SECONDS, 1, 86400,
		"how long split.rate must be exceeded before a partition splits",
	},
	[SETTING_HEARTBEAT_TIMEOUT_MS] = {
		"heartbeat.timeout_ms", SETTINGS_UNIT_MILLISECONDS, 100, INT32_MAX,
		"a storage node without a heartbeat for this long is down",
	},
};

struct settings {
	pthread_mutex_t lock;
	leveldb_t *db;
	leveldb_writeoptions_t *write_options;
	leveldb_readoptions_t *read_options;
	uint64_t defaults[SETTING_COUNT];
	uint64_t values[SETTING_COUNT];
	bool is_set[SETTING_COUNT];
	/* Replicated meta: a change goes through the group (settings_set_committer). */
	settings_commit_fn commit;
	void *commit_ctx;
};

static void settings_set_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void settings_set_why(char *why, const char *fmt, ...)
{
	va_list ap;

	if (!why)
		return;
	va_start(ap, fmt);
	vsnprintf(why, SETTINGS_WHY_BYTES, fmt, ap);
	va_end(ap);
}

static const char *settings_unit_name(enum settings_unit unit)
{
	switch (unit) {
	case SETTINGS_UNIT_BYTES: return "bytes";
	case SETTINGS_UNIT_RATE: return "ops/s";
	case SETTINGS_UNIT_SECONDS: return "s";
	case SETTINGS_UNIT_MILLISECONDS: return "ms";
	}
	return "?";
}

static const char *settings_unit_suffixes(enum settings_unit unit)
{
	switch (unit) {
	case SETTINGS_UNIT_BYTES: return "B, KiB, MiB, GiB or TiB";
	case SETTINGS_UNIT_RATE: return "/s";
	case SETTINGS_UNIT_SECONDS: return "s, m or h";
	case SETTINGS_UNIT_MILLISECONDS: return "ms, s or m";
	}
	return "";
}

/* ----------------------------------------------------------------- lookup */

void settings_default_values(uint64_t defaults[SETTING_COUNT])
{
	defaults[SETTING_ITEM_MAX_BYTES] = ITEM_DEFAULT_MAX_BYTES;
	defaults[SETTING_SPLIT_BYTES] = SETTINGS_SPLIT_BYTES_DEFAULT;
	defaults[SETTING_SPLIT_RATE] = SETTINGS_SPLIT_RATE_DEFAULT;
	defaults[SETTING_SPLIT_WINDOW_S] = SETTINGS_SPLIT_WINDOW_S_DEFAULT;
	defaults[SETTING_HEARTBEAT_TIMEOUT_MS] = 5000;
}

const char *settings_key(enum setting_id id)
{
	return (unsigned)id < SETTING_COUNT ? settings_specs[id].key : "?";
}

int settings_find(const char *key, enum setting_id *id, char *why)
{
	char known[SETTINGS_WHY_BYTES];
	size_t used = 0;

	for (int i = 0; i < SETTING_COUNT; i++) {
		if (strcmp(key, settings_specs[i].key) == 0) {
			*id = (enum setting_id)i;
			return 0;
		}
	}
	known[0] = '\0';
	for (int i = 0; i < SETTING_COUNT && used < sizeof(known); i++)
		used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s",
					 i ? ", " : "", settings_specs[i].key);
	/* The key is the user's: quoted with a bound, and only printable. */
	for (size_t i = 0; key[i] && i < SETTINGS_KEY_MAX_BYTES; i++) {
		if (!isprint((unsigned char)key[i])) {
			settings_set_why(why, "no such setting; the settings are: %s", known);
			return -ENOENT;
		}
	}
	settings_set_why(why, "no setting '%.*s'; the settings are: %s", SETTINGS_KEY_MAX_BYTES,
			 key, known);
	return -ENOENT;
}

/* ---------------------------------------------------------------- parsing */

/* The multiplier of suffix for unit, or 0 when the suffix does not fit. */
static uint64_t settings_multiplier(enum settings_unit unit, const char *suffix)
{
	static const struct {
		enum settings_unit unit;
		const char *suffix;
		uint64_t multiplier;
	} table[] = {
		{ SETTINGS_UNIT_BYTES, "", 1 },
		{ SETTINGS_UNIT_BYTES, "B", 1 },
		{ SETTINGS_UNIT_BYTES, "K", 1ull << 10 },
		{ SETTINGS_UNIT_BYTES, "KiB", 1ull << 10 },
		{ SETTINGS_UNIT_BYTES, "M", 1ull << 20 },
		{ SETTINGS_UNIT_BYTES, "MiB", 1ull << 20 },
		{ SETTINGS_UNIT_BYTES, "G", 1ull << 30 },
		{ SETTINGS_UNIT_BYTES, "GiB", 1ull << 30 },
		{ SETTINGS_UNIT_BYTES, "T", 1ull << 40 },
		{ SETTINGS_UNIT_BYTES, "TiB", 1ull << 40 },
		{ SETTINGS_UNIT_RATE, "", 1 },
		{ SETTINGS_UNIT_RATE, "/s", 1 },
		{ SETTINGS_UNIT_SECONDS, "", 1 },
		{ SETTINGS_UNIT_SECONDS, "s", 1 },
		{ SETTINGS_UNIT_SECONDS, "m", 60 },
		{ SETTINGS_UNIT_SECONDS, "h", 3600 },
		{ SETTINGS_UNIT_MILLISECONDS, "", 1 },
		{ SETTINGS_UNIT_MILLISECONDS, "ms", 1 },
		{ SETTINGS_UNIT_MILLISECONDS, "s", 1000 },
		{ SETTINGS_UNIT_MILLISECONDS, "m", 60000 },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].unit == unit && strcmp(table[i].suffix, suffix) == 0)
			return table[i].multiplier;
	return 0;
}

int settings_parse(enum setting_id id, const char *text, uint64_t *value, char *why)
{
	const struct setting_spec *spec = &settings_specs[id];
	unsigned long long number;
	uint64_t multiplier;
	const char *suffix;
	char *end;

	if (!isdigit((unsigned char)text[0])) {
		settings_set_why(why, "%s wants a whole number of %s (with %s), not '%.64s'",
				 spec->key, settings_unit_name(spec->unit),
				 settings_unit_suffixes(spec->unit), text);
		return -EINVAL;
	}
	errno = 0;
	number = strtoull(text, &end, 10);
	if (errno == ERANGE) {
		settings_set_why(why, "%s: '%.64s' is too large (at most %" PRIu64 " %s)",
				 spec->key, text, spec->max, settings_unit_name(spec->unit));
		return -ERANGE;
	}
	suffix = end;
	while (*suffix == ' ')
		suffix++;
	multiplier = settings_multiplier(spec->unit, suffix);
	if (multiplier == 0) {
		settings_set_why(why, "%s: unknown unit '%.16s' (the unit of %s is %s; "
				 "write a number, or one with %s)", spec->key, suffix,
				 spec->key, settings_unit_name(spec->unit),
				 settings_unit_suffixes(spec->unit));
		return -EINVAL;
	}
	if (number > UINT64_MAX / multiplier || number * multiplier < spec->min ||
	    number * multiplier > spec->max) {
		settings_set_why(why, "%s: '%.64s' is out of range: %" PRIu64 " to %" PRIu64 " %s",
				 spec->key, text, spec->min, spec->max,
				 settings_unit_name(spec->unit));
		return -ERANGE;
	}
	*value = number * multiplier;
	return 0;
}

/* ------------------------------------------------------------ persistence */

static size_t settings_record_key(char *out, enum setting_id id)
{
	size_t key_bytes = strlen(settings_specs[id].key);

	memcpy(out, SETTINGS_RECORD_PREFIX, SETTINGS_RECORD_PREFIX_BYTES);
	memcpy(out + SETTINGS_RECORD_PREFIX_BYTES, settings_specs[id].key, key_bytes);
	return SETTINGS_RECORD_PREFIX_BYTES + key_bytes;
}

/* Reads the stored value of id, if any, into settings. */
static int settings_load_one(struct settings *settings, enum setting_id id)
{
	char key[SETTINGS_RECORD_KEY_MAX_BYTES];
	size_t key_bytes = settings_record_key(key, id), value_bytes = 0;
	Quorum__SettingRecord *record;
	char *error = NULL, *value;
	const struct setting_spec *spec = &settings_specs[id];

	value = leveldb_get(settings->db, settings->read_options, key, key_bytes, &value_bytes,
			    &error);
	if (error) {
		log_error("cannot read setting %s: %s", spec->key, error);
		leveldb_free(error);
		return -EIO;
	}
	if (!value)
		return 0;
	record = quorum__setting_record__unpack(NULL, value_bytes, (const uint8_t *)value);
	leveldb_free(value);
	if (!record || strcmp(record->key, spec->key) != 0 || record->value < spec->min ||
	    record->value > spec->max) {
		log_error("stored setting %s does not decode or is out of range; using the "
			  "default %" PRIu64 " %s (set it again to fix)", spec->key,
			  settings->defaults[id], settings_unit_name(spec->unit));
		if (record)
			quorum__setting_record__free_unpacked(record, NULL);
		return 0;
	}
	settings->values[id] = record->value;
	settings->is_set[id] = true;
	log_info("setting %s = %" PRIu64 " %s (set by an operator; default %" PRIu64 ")",
		 spec->key, record->value, settings_unit_name(spec->unit), settings->defaults[id]);
	quorum__setting_record__free_unpacked(record, NULL);
	return 0;
}

int settings_open(struct leveldb_t *db, const uint64_t defaults[SETTING_COUNT],
		  struct settings **out)
{
	struct settings *settings = calloc(1, sizeof(*settings));
	int err = 0;

	*out = NULL;
	if (!settings)
		return -ENOMEM;
	settings->db = db;
	settings->write_options = leveldb_writeoptions_create();
	settings->read_options = leveldb_readoptions_create();
	if (!settings->write_options || !settings->read_options ||
	    pthread_mutex_init(&settings->lock, NULL) != 0) {
		if (settings->write_options)
			leveldb_writeoptions_destroy(settings->write_options);
		if (settings->read_options)
			leveldb_readoptions_destroy(settings->read_options);
		free(settings);
		return -ENOMEM;
	}
	leveldb_writeoptions_set_sync(settings->write_options, 1);
	leveldb_readoptions_set_verify_checksums(settings->read_options, 1);
	memcpy(settings->defaults, defaults, sizeof(settings->defaults));
	memcpy(settings->values, defaults, sizeof(settings->values));
	for (int i = 0; i < SETTING_COUNT && !err; i++)
		err = settings_load_one(settings, (enum setting_id)i);
	if (err < 0) {
		settings_close(settings);
		return err;
	}
	*out = settings;
	return 0;
}

void settings_close(struct settings *settings)
{
	if (!settings)
		return;
	leveldb_writeoptions_destroy(settings->write_options);
	leveldb_readoptions_destroy(settings->read_options);
	pthread_mutex_destroy(&settings->lock);
	free(settings);
}

uint64_t settings_get(struct settings *settings, enum setting_id id)
{
	uint64_t value;

	pthread_mutex_lock(&settings->lock);
	value = settings->values[id];
	pthread_mutex_unlock(&settings->lock);
	return value;
}

/* settings_write through the committer: the same record, in a batch. */
static int settings_commit(struct settings *settings, enum setting_id id, bool is_default,
			   uint64_t value, char *why)
{
	Quorum__SettingRecord record = QUORUM__SETTING_RECORD__INIT;
	char key[SETTINGS_RECORD_KEY_MAX_BYTES];
	size_t key_bytes = settings_record_key(key, id);
	uint8_t packed[SETTINGS_RECORD_KEY_MAX_BYTES + 32];
	leveldb_writebatch_t *batch = leveldb_writebatch_create();
	int err;

	if (!batch) {
		settings_set_why(why, "out of memory");
		return -ENOMEM;
	}
	if (is_default) {
		leveldb_writebatch_delete(batch, key, key_bytes);
	} else {
		record.format = SETTINGS_RECORD_FORMAT;
		record.key = (char *)settings_specs[id].key;
		record.value = value;
		if (quorum__setting_record__get_packed_size(&record) > sizeof(packed)) {
			leveldb_writebatch_destroy(batch);
			settings_set_why(why, "setting record too large");
			return -EINVAL;
		}
		leveldb_writebatch_put(batch, key, key_bytes, (const char *)packed,
				       quorum__setting_record__pack(&record, packed));
	}
	err = settings->commit(settings->commit_ctx, batch, why, why ? SETTINGS_WHY_BYTES : 0);
	leveldb_writebatch_destroy(batch);
	return err;
}

/* Stores value for id (is_default: removes the record), synced. */
static int settings_write(struct settings *settings, enum setting_id id, bool is_default,
			  uint64_t value, char *why)
{
	Quorum__SettingRecord record = QUORUM__SETTING_RECORD__INIT;
	char key[SETTINGS_RECORD_KEY_MAX_BYTES];
	size_t key_bytes = settings_record_key(key, id);
	uint8_t packed[SETTINGS_RECORD_KEY_MAX_BYTES + 32];
	char *error = NULL;

	if (settings->commit)
		return settings_commit(settings, id, is_default, value, why);
	if (is_default) {
		leveldb_delete(settings->db, settings->write_options, key, key_bytes, &error);
	} else {
		record.format = SETTINGS_RECORD_FORMAT;
		record.key = (char *)settings_specs[id].key;
		record.value = value;
		if (quorum__setting_record__get_packed_size(&record) > sizeof(packed)) {
			settings_set_why(why, "setting record too large");
			return -EINVAL;
		}
		leveldb_put(settings->db, settings->write_options, key, key_bytes,
			    (const char *)packed, quorum__setting_record__pack(&record, packed),
			    &error);
	}
	if (error) {
		log_error("cannot store setting %s: %s", settings_specs[id].key, error);
		settings_set_why(why, "cannot store the setting: %s", error);
		leveldb_free(error);
		return -EIO;
	}
	return 0;
}

int settings_set(struct settings *settings, const char *key, const char *text,
		 enum setting_id *id_out, char *why)
{
	bool is_default = strcmp(text, "default") == 0;
	enum setting_id id;
	uint64_t value = 0;
	int err;

	err = settings_find(key, &id, why);
	if (err < 0)
		return err;
	if (!is_default) {
		err = settings_parse(id, text, &value, why);
		if (err < 0)
			return err;
	}
	pthread_mutex_lock(&settings->lock);
	if (is_default)
		value = settings->defaults[id];
	err = settings_write(settings, id, is_default, value, why);
	if (err == 0) {
		log_info("setting %s: %" PRIu64 " -> %" PRIu64 " %s%s", settings_specs[id].key,
			 settings->values[id], value, settings_unit_name(settings_specs[id].unit),
			 is_default ? " (the default)" : "");
		settings->values[id] = value;
		settings->is_set[id] = !is_default;
	}
	pthread_mutex_unlock(&settings->lock);
	if (err == 0 && id_out)
		*id_out = id;
	return err;
}

/* -------------------------------------------------------------- describing */

static Quorum__Setting *settings_describe_one(struct settings *settings, enum setting_id id,
					      struct arena *arena)
{
	const struct setting_spec *spec = &settings_specs[id];
	Quorum__Setting *setting = arena_alloc(arena, sizeof(*setting));

	if (!setting)
		return NULL;
	quorum__setting__init(setting);
	/* The specs are static: the response may point at them. */
	setting->key = (char *)spec->key;
	setting->unit = (char *)settings_unit_name(spec->unit);
	setting->description = (char *)spec->description;
	setting->min = spec->min;
	setting->max = spec->max;
	setting->value = settings->values[id];
	setting->default_value = settings->defaults[id];
	setting->has_is_set = true;
	setting->is_set = settings->is_set[id];
	return setting;
}

int settings_describe(struct settings *settings, const char *key, struct arena *arena,
		      Quorum__SettingsResponse **out, char *why)
{
	Quorum__SettingsResponse *response = arena_alloc(arena, sizeof(*response));
	enum setting_id only = SETTING_COUNT;
	int err = 0;

	if (!response)
		return -ENOMEM;
	if (key) {
		err = settings_find(key, &only, why);
		if (err < 0)
			return err;
	}
	quorum__settings_response__init(response);
	response->settings = arena_alloc(arena, SETTING_COUNT * sizeof(*response->settings));
	if (!response->settings)
		return -ENOMEM;
	pthread_mutex_lock(&settings->lock);
	for (int i = 0; i < SETTING_COUNT; i++) {
		Quorum__Setting *setting;

		if (key && i != (int)only)
			continue;
		setting = settings_describe_one(settings, (enum setting_id)i, arena);
		if (!setting) {
			err = -ENOMEM;
			break;
		}
		response->settings[response->n_settings++] = setting;
	}
	pthread_mutex_unlock(&settings->lock);
	if (err < 0)
		return err;
	*out = response;
	return 0;
}

void settings_set_committer(struct settings *settings, settings_commit_fn commit, void *ctx)
{
	pthread_mutex_lock(&settings->lock);
	settings->commit = commit;
	settings->commit_ctx = ctx;
	pthread_mutex_unlock(&settings->lock);
}

int settings_reload(struct settings *settings)
{
	int err = 0;

	pthread_mutex_lock(&settings->lock);
	memcpy(settings->values, settings->defaults, sizeof(settings->values));
	memset(settings->is_set, 0, sizeof(settings->is_set));
	for (int i = 0; i < SETTING_COUNT && !err; i++)
		err = settings_load_one(settings, (enum setting_id)i);
	pthread_mutex_unlock(&settings->lock);
	return err;
}
