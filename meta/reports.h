/* reports.h: copies of the GroupReports storage nodes send with their
 * heartbeats, which the catalog keeps until the next one (describe,
 * `quorumctl partition list`, split decisions read them).
 *
 * A report decoded from a heartbeat lives in the request's memory; a copy
 * owns everything it points to (hot keys, split children), so it outlives
 * the request. What a peer sent is bounded here: at most
 * REPORTS_HOT_KEYS_MAX hot keys of at most KEY_NAME_MAX_BYTES each and
 * REPORTS_CHILDREN_MAX children per report are kept; unknown fields of a
 * newer node are dropped. */
#ifndef QUORUM_REPORTS_H
#define QUORUM_REPORTS_H

#include "cluster/arena.h"
#include "quorum.pb-c.h"

#include <stddef.h>

#define REPORTS_HOT_KEYS_MAX 8
#define REPORTS_CHILDREN_MAX 4096

/* A malloc'd array of count deep copies of reports (NULL when count is 0),
 * freed with reports_free. -ENOMEM. */
int reports_copy(Quorum__GroupReport *const *reports, size_t count, Quorum__GroupReport **out);
void reports_free(Quorum__GroupReport *reports, size_t count);

/* A deep copy of report in arena, or NULL when out of memory. */
Quorum__GroupReport *reports_in_arena(const Quorum__GroupReport *report, struct arena *arena);

#endif
