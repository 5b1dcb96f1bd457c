/**
 * @file cm_value.h
 * @brief Typed column values as PostgreSQL input text.
 */
#ifndef CM_VALUE_H
#define CM_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "clinicmig/cm_event.h"

/** Room for any value's text but TEXT (which is used as it is). */
#define CM_VALUE_TEXT_MAX 40

/** @brief Writes days since 1970-01-01 as "YYYY-MM-DD". */
void cm_date_format(int64_t days, char *buf, size_t size);

/** @brief Writes µs since the epoch as "YYYY-MM-DDTHH:MM:SS.ffffffZ". */
void cm_timestamp_format(int64_t us, char *buf, size_t size);

/**
 * @brief The text PostgreSQL reads back as the same value.
 * @returns @p v->s for TEXT, @p buf filled for INT, BOOL, DATE and
 *          TIMESTAMP, or NULL for NULL, ABSENT and UNAVAILABLE.
 */
const char *cm_value_text(const cm_value_t *v, char *buf, size_t size);

#endif
