/**
 * @file cm_repair.h
 * @brief The clinicmig-replay command that repairs an offset gap.
 *
 * NOTES
 * The worker logs it when it records a gap and the reconciler publishes it
 * in its gap event (docs/design.md §2.4): a backfill of the gap's table, or
 * of every table for a gap on the replay topic, with the legacy connection
 * string left for the operator (LEGACY_CONNINFO).
 */
#ifndef CM_REPAIR_H
#define CM_REPAIR_H

#include <stddef.h>

/**
 * @brief Writes the command for a gap on @p topic into @p buf.
 * @param replay  the replay topic; @p prefix, @p schema: Debezium's
 *                topic.prefix and the legacy schema.
 * @returns @p buf.
 */
const char *cm_repair_command(const char *brokers, const char *replay,
                              const char *prefix, const char *schema,
                              const char *topic, char *buf, size_t size);

#endif
