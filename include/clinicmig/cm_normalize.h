/**
 * @file cm_normalize.h
 * @brief Normalizers of the grouping keys: email and phone.
 *
 * NOTES
 * These are the only code the convergence oracle shares with the worker
 * (docs/design.md §2.3). A value that cannot be normalized gives no key: a
 * missed merge can be repaired, a false merge of two people's records cannot.
 */
#ifndef CM_NORMALIZE_H
#define CM_NORMALIZE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Normalizes an email: trimmed of white space, lower-cased, and
 *        usable only with exactly one '@' with text on both sides.
 * @returns 1 and the key in @p out if usable; 0 if the value gives no key
 *          (NULL, empty, malformed, or longer than @p out_size - 1).
 */
int cm_email_normalize(const char *in, char *out, size_t out_size);

/**
 * @brief Normalizes a phone number to E.164 with libphonenumber, parsed
 *        against @p region (ISO 3166 code such as "RU"), kept only if
 *        libphonenumber judges it a valid number.
 * @returns 1 and the E.164 text in @p out; 0 if it gives no key.
 * @remark Thread-safe.
 */
int cm_phone_normalize(const char *in, const char *region, char *out,
                       size_t out_size);

/** @returns 1 if @p region is a region libphonenumber knows, else 0. */
int cm_phone_region_valid(const char *region);

#ifdef __cplusplus
}
#endif

#endif
