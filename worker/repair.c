/*
 * repair.c — the command that repairs an offset gap (cm_repair.h).
 */
#include "clinicmig/cm_repair.h"

#include <stdio.h>
#include <string.h>

#include "clinicmig/cm_catalog.h"

const char *cm_repair_command(const char *brokers, const char *replay,
                              const char *prefix, const char *schema,
                              const char *topic, char *buf, size_t size) {
  const char *dot = strrchr(topic, '.');
  const char *table = dot && strcmp(topic, replay) != 0 &&
                              cm_table_from_name(dot + 1) != CM_TABLE_NONE &&
                              cm_table_from_name(dot + 1) != CM_TABLE_CLINIC
                          ? dot + 1
                          : NULL;

  snprintf(buf, size,
           "clinicmig-replay db --legacy-conninfo LEGACY_CONNINFO "
           "--bootstrap-servers %s --topic-replay %s --topic-prefix %s "
           "--source-schema %s%s%s",
           brokers, replay, prefix, schema, table ? " --tables " : "",
           table ? table : "");
  return buf;
}
