/**
 * @file cm_value.h
 * @brief Typed column values as PostgreSQL input text.
 */
#ifndef CM_VALUE_H
#define CM_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "clinicmig/cm_event.h"

/** Microseconds per day, and the range of years 0001-9999 that dates and
 *  timestamps must lie in. */
#define CM_US_PER_DAY INT64_C(86400000000)
#define CM_DAYS_MIN INT64_C(-719162) /* 0001-01-01 */
#define CM_DAYS_MAX INT64_C(2932896) /* 9999-12-31 */
#define CM_US_MIN (CM_DAYS_MIN * CM_US_PER_DAY)
#define CM_US_MAX ((CM_DAYS_MAX + 1) * CM_US_PER_DAY - 1)

/**
 * @brief Parses an ISO-8601 instant with an offset (`2025-01-22T09:30:00Z`,
 *        `... 09:30:00.123456+03:00`, `T` or a space, seconds and up to 9
 *        fraction digits optional) into µs since the epoch.
 * @returns 0, or -1 if it is not one or lies outside years 0001-9999.
 */
int cm_timestamp_parse(const char *s, int64_t *us);

/** @brief Parses exactly `YYYY-MM-DD` into days since 1970-01-01; 0 or -1. */
int cm_date_parse(const char *s, int64_t *days);

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
