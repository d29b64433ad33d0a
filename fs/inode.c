/* inode.c: the inode table (see inode.h). Two chained hash tables over the
 * same inodes: one by number (every live inode) and one by name (only
 * inodes that are not unlinked). Both grow by doubling so a table of
 * 100,000 listed items stays O(1) per lookup. One mutex guards it all: the
 * work under it is a few pointer moves, never I/O. */
#include "fs/inode.h"

#include "cluster/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INODE_BUCKETS_INITIAL 1024

struct inode {
	uint64_t number;
	enum inode_kind kind;
	bool unlinked;
	uint64_t lookup_count;
	char *table;               /* malloc'd; "" for the root */
	char *key;                 /* malloc'd; "" for the root and tables */
	uint64_t name_hash;
	struct inode *name_next;   /* chain in the name index (when linked) */
	struct inode *number_next; /* chain in the number index */
	struct inode_link *handles;
	/* The item's metadata last learned from the cluster (inode.h) */
	bool attr_known;
	int64_t attr_asked_at_ms;
	struct item_attr attr;
};

struct inode_table {
	pthread_mutex_t lock;
	struct inode **by_number;
	struct inode **by_name;
	size_t bucket_count;       /* of both indexes, a power of two */
	size_t inode_count;
	uint64_t next_number;
};

static uint64_t inode_hash_name(enum inode_kind kind, const char *table, const char *key)
{
	/* FNV-1a over kind, table, a separator NUL and key. */
	uint64_t hash = 1469598103934665603ULL;
	const unsigned char *p;

	hash = (hash ^ (unsigned)kind) * 1099511628211ULL;
	for (p = (const unsigned char *)table; *p; p++)
		hash = (hash ^ *p) * 1099511628211ULL;
	hash = hash * 1099511628211ULL;
	for (p = (const unsigned char *)key; *p; p++)
		hash = (hash ^ *p) * 1099511628211ULL;
	return hash;
}

static uint64_t inode_hash_number(uint64_t number)
{
	number ^= number >> 33;
	number *= 0xff51afd7ed558ccdULL;
	number ^= number >> 33;
	return number;
}

static void inode_free_one(struct inode *inode)
{
	free(inode->table);
	free(inode->key);
	free(inode);
}

static struct inode *inode_lookup_number(struct inode_table *inodes, uint64_t number)
{
	struct inode *inode = inodes->by_number[inode_hash_number(number) &
						 (inodes->bucket_count - 1)];

	while (inode && inode->number != number)
		inode = inode->number_next;
	return inode;
}

static struct inode *inode_lookup_name(struct inode_table *inodes, enum inode_kind kind,
				       const char *table, const char *key)
{
	uint64_t hash = inode_hash_name(kind, table, key);
	struct inode *inode = inodes->by_name[hash & (inodes->bucket_count - 1)];

	for (; inode; inode = inode->name_next) {
		if (inode->name_hash == hash && inode->kind == kind &&
		    strcmp(inode->table, table) == 0 && strcmp(inode->key, key) == 0)
			return inode;
	}
	return NULL;
}

static void inode_link_name(struct inode_table *inodes, struct inode *inode)
{
	struct inode **bucket = &inodes->by_name[inode->name_hash & (inodes->bucket_count - 1)];

	inode->name_next = *bucket;
	*bucket = inode;
}

static void inode_unlink_name(struct inode_table *inodes, struct inode *inode)
{
	struct inode **p = &inodes->by_name[inode->name_hash & (inodes->bucket_count - 1)];

	for (; *p; p = &(*p)->name_next) {
		if (*p == inode) {
			*p = inode->name_next;
			inode->name_next = NULL;
			return;
		}
	}
}

static void inode_link_number(struct inode_table *inodes, struct inode *inode)
{
	struct inode **bucket = &inodes->by_number[inode_hash_number(inode->number) &
						   (inodes->bucket_count - 1)];

	inode->number_next = *bucket;
	*bucket = inode;
}

static void inode_unlink_number(struct inode_table *inodes, struct inode *inode)
{
	struct inode **p = &inodes->by_number[inode_hash_number(inode->number) &
					      (inodes->bucket_count - 1)];

	for (; *p; p = &(*p)->number_next) {
		if (*p == inode) {
			*p = inode->number_next;
			return;
		}
	}
}

/* Doubles both indexes. On allocation failure the table keeps working,
 * only with longer chains. */
static void inode_grow(struct inode_table *inodes)
{
	size_t old_count = inodes->bucket_count, i;
	struct inode **old_number = inodes->by_number;
	struct inode **by_number = calloc(old_count * 2, sizeof(*by_number));
	struct inode **by_name = calloc(old_count * 2, sizeof(*by_name));

	if (!by_number || !by_name) {
		free(by_number);
		free(by_name);
		return;
	}
	free(inodes->by_name);
	inodes->by_number = by_number;
	inodes->by_name = by_name;
	inodes->bucket_count = old_count * 2;
	for (i = 0; i < old_count; i++) {
		struct inode *inode = old_number[i], *next;

		for (; inode; inode = next) {
			next = inode->number_next;
			inode_link_number(inodes, inode);
			if (!inode->unlinked)
				inode_link_name(inodes, inode);
		}
	}
	free(old_number);
}

static struct inode *inode_create(struct inode_table *inodes, enum inode_kind kind,
				  const char *table, const char *key)
{
	struct inode *inode = calloc(1, sizeof(*inode));

	if (!inode)
		return NULL;
	inode->table = strdup(table);
	inode->key = strdup(key);
	if (!inode->table || !inode->key) {
		inode_free_one(inode);
		return NULL;
	}
	inode->kind = kind;
	inode->number = inodes->next_number++;
	inode->name_hash = inode_hash_name(kind, table, key);
	if (inodes->inode_count >= inodes->bucket_count)
		inode_grow(inodes);
	inode_link_number(inodes, inode);
	inode_link_name(inodes, inode);
	inodes->inode_count++;
	return inode;
}

/* Frees the inode when the kernel forgot it and no handle is open. */
static void inode_release_if_unused(struct inode_table *inodes, struct inode *inode)
{
	if (inode->number == INODE_ROOT_NUMBER || inode->lookup_count > 0 || inode->handles)
		return;
	if (!inode->unlinked)
		inode_unlink_name(inodes, inode);
	inode_unlink_number(inodes, inode);
	inodes->inode_count--;
	inode_free_one(inode);
}

int inode_table_new(struct inode_table **out)
{
	struct inode_table *inodes = calloc(1, sizeof(*inodes));
	struct inode *root;
	int rc;

	if (!inodes)
		return -ENOMEM;
	rc = pthread_mutex_init(&inodes->lock, NULL);
	if (rc) {
		free(inodes);
		return -rc;
	}
	inodes->bucket_count = INODE_BUCKETS_INITIAL;
	inodes->by_number = calloc(inodes->bucket_count, sizeof(*inodes->by_number));
	inodes->by_name = calloc(inodes->bucket_count, sizeof(*inodes->by_name));
	inodes->next_number = INODE_ROOT_NUMBER;
	root = (inodes->by_number && inodes->by_name) ?
		inode_create(inodes, INODE_ROOT, "", "") : NULL;
	if (!root) {
		free(inodes->by_number);
		free(inodes->by_name);
		pthread_mutex_destroy(&inodes->lock);
		free(inodes);
		return -ENOMEM;
	}
	*out = inodes;
	return 0;
}

/* The first handle attached to any inode, or NULL. */
static struct inode_link *inode_first_link(struct inode_table *inodes)
{
	struct inode_link *link = NULL;
	size_t i;

	pthread_mutex_lock(&inodes->lock);
	for (i = 0; i < inodes->bucket_count && !link; i++) {
		struct inode *inode = inodes->by_number[i];

		for (; inode && !link; inode = inode->number_next)
			link = inode->handles;
	}
	pthread_mutex_unlock(&inodes->lock);
	return link;
}

void inode_table_free(struct inode_table *inodes,
		      void (*release_link)(struct inode_link *link, void *arg), void *arg)
{
	struct inode_link *link;
	size_t i;

	if (!inodes)
		return;
	/* The callback detaches each handle; stop if one does not, rather
	 * than loop forever. */
	while (release_link && (link = inode_first_link(inodes))) {
		release_link(link, arg);
		if (inode_first_link(inodes) == link)
			break;
	}
	for (i = 0; i < inodes->bucket_count; i++) {
		struct inode *inode = inodes->by_number[i], *next;

		for (; inode; inode = next) {
			next = inode->number_next;
			inode_free_one(inode);
		}
	}
	free(inodes->by_number);
	free(inodes->by_name);
	pthread_mutex_destroy(&inodes->lock);
	free(inodes);
}

int inode_ref(struct inode_table *inodes, enum inode_kind kind, const char *table,
	      const char *key, uint64_t *number)
{
	struct inode *inode;

	if (kind == INODE_ROOT) {
		*number = INODE_ROOT_NUMBER;
		return 0;
	}
	if (kind == INODE_TABLE)
		key = "";
	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_name(inodes, kind, table, key);
	if (!inode)
		inode = inode_create(inodes, kind, table, key);
	if (inode) {
		inode->lookup_count++;
		*number = inode->number;
	}
	pthread_mutex_unlock(&inodes->lock);
	return inode ? 0 : -ENOMEM;
}

uint64_t inode_find(struct inode_table *inodes, enum inode_kind kind, const char *table,
		    const char *key)
{
	struct inode *inode;
	uint64_t number;

	if (kind == INODE_ROOT)
		return INODE_ROOT_NUMBER;
	if (kind == INODE_TABLE)
		key = "";
	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_name(inodes, kind, table, key);
	number = inode ? inode->number : 0;
	pthread_mutex_unlock(&inodes->lock);
	return number;
}

void inode_forget(struct inode_table *inodes, uint64_t number, uint64_t count)
{
	struct inode *inode;

	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_number(inodes, number);
	if (!inode) {
		pthread_mutex_unlock(&inodes->lock);
		log_warn("forget of unknown inode %llu", (unsigned long long)number);
		return;
	}
	if (inode->lookup_count < count) {
		log_warn("forget of %llu lookups of inode %llu that has %llu",
			 (unsigned long long)count, (unsigned long long)number,
			 (unsigned long long)inode->lookup_count);
		count = inode->lookup_count;
	}
	inode->lookup_count -= count;
	inode_release_if_unused(inodes, inode);
	pthread_mutex_unlock(&inodes->lock);
}

int inode_get_name(struct inode_table *inodes, uint64_t number, struct inode_name *out)
{
	struct inode *inode;
	int rc = 0;

	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_number(inodes, number);
	if (inode) {
		out->kind = inode->kind;
		out->unlinked = inode->unlinked;
		/* Names were validated to fit before they entered the table. */
		snprintf(out->table, sizeof(out->table), "%s", inode->table);
		snprintf(out->key, sizeof(out->key), "%s", inode->key);
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&inodes->lock);
	return rc;
}

void inode_mark_unlinked(struct inode_table *inodes, enum inode_kind kind, const char *table,
			 const char *key)
{
	struct inode *inode;

	if (kind == INODE_ROOT)
		return;
	if (kind == INODE_TABLE)
		key = "";
	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_name(inodes, kind, table, key);
	if (inode) {
		inode_unlink_name(inodes, inode);
		inode->unlinked = true;
		inode->attr_known = false;
	}
	pthread_mutex_unlock(&inodes->lock);
}

int inode_rename(struct inode_table *inodes, const char *table, const char *from,
		 const char *to)
{
	struct inode *source, *target;
	char *key;

	if (strcmp(from, to) == 0)
		return 0;
	key = strdup(to);
	if (!key)
		return -ENOMEM;
	pthread_mutex_lock(&inodes->lock);
	target = inode_lookup_name(inodes, INODE_ITEM, table, to);
	if (target) {
		inode_unlink_name(inodes, target);
		target->unlinked = true;
		target->attr_known = false;
	}
	source = inode_lookup_name(inodes, INODE_ITEM, table, from);
	if (source) {
		inode_unlink_name(inodes, source);
		free(source->key);
		source->key = key;
		key = NULL;
		source->name_hash = inode_hash_name(INODE_ITEM, table, to);
		inode_link_name(inodes, source);
		/* The node stamped the moved item anew (its ctime). */
		source->attr_known = false;
	}
	pthread_mutex_unlock(&inodes->lock);
	free(key);
	return 0;
}

int inode_attach_handle(struct inode_table *inodes, uint64_t number, struct inode_link *link)
{
	struct inode *inode;

	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_number(inodes, number);
	if (inode) {
		link->next = inode->handles;
		inode->handles = link;
	}
	pthread_mutex_unlock(&inodes->lock);
	return inode ? 0 : -ENOENT;
}

void inode_detach_handle(struct inode_table *inodes, uint64_t number, struct inode_link *link)
{
	struct inode *inode;
	struct inode_link **p;

	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_number(inodes, number);
	if (inode) {
		for (p = &inode->handles; *p; p = &(*p)->next) {
			if (*p == link) {
				*p = link->next;
				link->next = NULL;
				break;
			}
		}
		inode_release_if_unused(inodes, inode);
	}
	pthread_mutex_unlock(&inodes->lock);
}

void inode_visit_handles(struct inode_table *inodes, uint64_t number,
			 void (*visit)(struct inode_link *link, void *arg), void *arg)
{
	struct inode *inode;
	struct inode_link *link;

	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_number(inodes, number);
	for (link = inode ? inode->handles : NULL; link; link = link->next) {
		if (!link->is_directory)
			visit(link, arg);
	}
	pthread_mutex_unlock(&inodes->lock);
}

void inode_note_attr(struct inode_table *inodes, uint64_t number, const struct item_attr *attr,
		     int64_t asked_at_ms, int64_t max_age_ms)
{
	struct inode *inode;

	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_number(inodes, number);
	if (inode && inode->kind == INODE_ITEM && !inode->unlinked &&
	    (!inode->attr_known || attr->version > inode->attr.version ||
	     (attr->version == inode->attr.version && asked_at_ms >= inode->attr_asked_at_ms) ||
	     asked_at_ms - inode->attr_asked_at_ms >= max_age_ms)) {
		inode->attr = *attr;
		inode->attr_asked_at_ms = asked_at_ms;
		inode->attr_known = true;
	}
	pthread_mutex_unlock(&inodes->lock);
}

void inode_drop_attr(struct inode_table *inodes, uint64_t number)
{
	struct inode *inode;

	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_number(inodes, number);
	if (inode)
		inode->attr_known = false;
	pthread_mutex_unlock(&inodes->lock);
}

/* Under the lock: the inode's metadata if younger than max_age_ms. */
static bool inode_fresh_attr_locked(const struct inode *inode, int64_t now_ms,
				    int64_t max_age_ms, struct item_attr *attr, int64_t *age_ms)
{
	int64_t age;

	if (!inode || inode->kind != INODE_ITEM || inode->unlinked || !inode->attr_known)
		return false;
	age = now_ms - inode->attr_asked_at_ms;
	if (age < 0)
		age = 0;
	if (age >= max_age_ms)
		return false;
	*attr = inode->attr;
	*age_ms = age;
	return true;
}

bool inode_fresh_attr(struct inode_table *inodes, uint64_t number, int64_t now_ms,
		      int64_t max_age_ms, struct item_attr *attr, int64_t *age_ms)
{
	bool fresh;

	pthread_mutex_lock(&inodes->lock);
	fresh = inode_fresh_attr_locked(inode_lookup_number(inodes, number), now_ms, max_age_ms,
					attr, age_ms);
	pthread_mutex_unlock(&inodes->lock);
	return fresh;
}

bool inode_ref_fresh(struct inode_table *inodes, const char *table, const char *key,
		     int64_t now_ms, int64_t max_age_ms, struct item_attr *attr, int64_t *age_ms,
		     uint64_t *number)
{
	struct inode *inode;
	bool fresh;

	pthread_mutex_lock(&inodes->lock);
	inode = inode_lookup_name(inodes, INODE_ITEM, table, key);
	fresh = inode_fresh_attr_locked(inode, now_ms, max_age_ms, attr, age_ms);
	if (fresh) {
		inode->lookup_count++;
		*number = inode->number;
	}
	pthread_mutex_unlock(&inodes->lock);
	return fresh;
}

size_t inode_count(struct inode_table *inodes)
{
	size_t count;

	pthread_mutex_lock(&inodes->lock);
	count = inodes->inode_count;
	pthread_mutex_unlock(&inodes->lock);
	return count;
}
