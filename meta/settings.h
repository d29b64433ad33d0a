/* settings.h: the cluster settings the metadata service holds and an
 * operator changes at run time (`quorumctl config get|set`).
 *
 *   key                   unit    default           range
 *   item.max_bytes        bytes   --item-max-bytes  1 .. 32 MiB (half a message)
 *   split.bytes           bytes   64 MiB            64 KiB .. 1 TiB
 *   split.rate            ops/s   1000              1 .. 10,000,000
 *   split.window_s        s       30                1 .. 86,400
 *   heartbeat.timeout_ms  ms      --heartbeat-timeout-ms  100 .. 2^31-1
 *
 * A value is written as a decimal number with an optional unit: bytes take
 * B, KiB, MiB, GiB, TiB (K, M, G, T alike: powers of 1024); seconds take s,
 * m, h; milliseconds take ms, s, m; rates take /s. The word "default"
 * forgets a stored value. Defaults come from the caller (meta's flags), so
 * a flag still sets the value until an operator overrides it.
 *
 * A value set is stored in the catalog's LevelDB (written with sync before
 * the caller is answered) under "s/" + key as a SettingRecord
 * (quorum.proto); the default is not stored, so a changed flag takes effect
 * for every setting never set. A stored record of a key this version does
 * not know (a newer meta wrote it) is kept on disk and ignored; one that
 * does not decode, or holds a value outside the range, is logged and
 * ignored too: the default is a safe value, and refusing to start over a
 * setting would take the whole cluster down.
 *
 * Thread-safe (one mutex); settings_get is what the hot paths call. */
#ifndef QUORUM_SETTINGS_H
#define QUORUM_SETTINGS_H

#include "cluster/arena.h"
#include "quorum.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SETTINGS_RECORD_PREFIX "s/"
#define SETTINGS_RECORD_PREFIX_BYTES 2
#define SETTINGS_RECORD_FORMAT 1
#define SETTINGS_WHY_BYTES 256

#define SETTINGS_SPLIT_BYTES_DEFAULT (64ull * 1024 * 1024)
#define SETTINGS_SPLIT_RATE_DEFAULT 1000
#define SETTINGS_SPLIT_WINDOW_S_DEFAULT 30

enum setting_id {
	SETTING_ITEM_MAX_BYTES,
	SETTING_SPLIT_BYTES,
	SETTING_SPLIT_RATE,
	SETTING_SPLIT_WINDOW_S,
	SETTING_HEARTBEAT_TIMEOUT_MS,
	SETTING_COUNT,
};

struct settings;

/* The LevelDB handle of leveldb/c.h, without its header. */
struct leveldb_t;

/* Fills defaults with the built-in default of every setting; the caller
 * overrides what its flags say before settings_open. */
void settings_default_values(uint64_t defaults[SETTING_COUNT]);

/* Loads the stored settings from db (which must outlive them) over
 * defaults. -ENOMEM, -EIO (the database cannot be read). */
int settings_open(struct leveldb_t *db, const uint64_t defaults[SETTING_COUNT],
		  struct settings **out);
void settings_close(struct settings *settings);

/* The current value of id. */
uint64_t settings_get(struct settings *settings, enum setting_id id);

/* The setting called key; -ENOENT when there is none (why lists the keys). */
int settings_find(const char *key, enum setting_id *id, char *why);
const char *settings_key(enum setting_id id);

/* Parses text (a number with an optional unit, see above) as a value of
 * id in its range. -EINVAL or -ERANGE, with why. */
int settings_parse(enum setting_id id, const char *text, uint64_t *value, char *why);

/* Sets key to text ("default": back to the default), durably, then in
 * memory. *id_out (may be NULL) names the setting changed. -ENOENT (no
 * such key), -EINVAL, -ERANGE, -EIO (the write failed: nothing changed),
 * -ENOMEM; why says which. */
int settings_set(struct settings *settings, const char *key, const char *text,
		 enum setting_id *id_out, char *why);

/* The settings (every one, or only key when it is not NULL) in arena.
 * -ENOENT for an unknown key (why lists the keys), -ENOMEM. */
int settings_describe(struct settings *settings, const char *key, struct arena *arena,
		      Quorum__SettingsResponse **out, char *why);

/* Replicated meta (meta/meta_group.h): settings_set hands its write batch to commit, which
 * returns 0 once it is durable and in db (as catalog_commit_fn in meta/catalog.h does),
 * instead of writing db itself. */
struct leveldb_writebatch_t;
typedef int (*settings_commit_fn)(void *ctx, struct leveldb_writebatch_t *batch, char *why,
				  size_t why_bytes);
void settings_set_committer(struct settings *settings, settings_commit_fn commit, void *ctx);

/* Reads every stored setting from db again (a meta that starts to lead). -EIO; on an error
 * the settings not read yet have their default. */
int settings_reload(struct settings *settings);

#endif
