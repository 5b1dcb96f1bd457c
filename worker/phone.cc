/*
 * phone.cc — the phone grouping key, a thin C wrapper over libphonenumber.
 *
 * NOTES
 * The worker and the convergence oracle both call cm_phone_normalize()
 * (docs/design.md §2.3): parse against the configured default region, keep the
 * number only if libphonenumber judges it valid, and key it by its E.164
 * text. A number with an extension gives no key: E.164 drops the
 * extension, so two people behind one switchboard would otherwise share a
 * key, and a false merge is the one mistake the design cannot repair.
 * No C++ exception crosses into C: every entry point catches all of them
 * and answers "no key". libphonenumber's logger is replaced once, before
 * first use, by a NullLogger, since logs must never carry phone numbers.
 * PhoneNumberUtil is a thread-safe singleton; so are these functions.
 */
/* cm_normalize.h has no __cplusplus guard of its own */
extern "C" {
#include "clinicmig/cm_normalize.h"
}

#include <cstring>
#include <mutex>
#include <set>
#include <string>

#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

namespace {

using i18n::phonenumbers::NullLogger;
using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

std::once_flag util_once;
PhoneNumberUtil *util_instance = nullptr;

/* Installs the silent logger; runs once, under util_once. */
void util_init() {
  PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();

  util->SetLogger(new NullLogger()); /* takes ownership */
  util_instance = util;
}

/* Returns the silenced singleton; may throw. */
PhoneNumberUtil *util_get() {
  std::call_once(util_once, util_init);
  return util_instance;
}

/* The body of cm_phone_normalize(), free to throw. */
int phone_normalize(const char *in, const char *region, char *out,
                    size_t out_size) {
  PhoneNumberUtil *util = util_get();
  PhoneNumber number;
  std::string e164;

  if (util == nullptr)
    return 0;
  if (util->Parse(in, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR)
    return 0;
  if (number.has_extension() || !util->IsValidNumber(number))
    return 0;
  util->Format(number, PhoneNumberUtil::E164, &e164);
  if (e164.empty() || e164.size() >= out_size)
    return 0;
  std::memcpy(out, e164.data(), e164.size());
  out[e164.size()] = '\0';
  return 1;
}

/* The body of cm_phone_region_valid(), free to throw. */
int region_valid(const char *region) {
  PhoneNumberUtil *util = util_get();
  std::set<std::string> regions;

  if (util == nullptr)
    return 0;
  util->GetSupportedRegions(&regions);
  return regions.count(region) > 0 ? 1 : 0;
}

} // namespace

extern "C" int cm_phone_normalize(const char *in, const char *region, char *out,
                                  size_t out_size) {
  if (out != nullptr && out_size > 0)
    out[0] = '\0';
  if (in == nullptr || region == nullptr || out == nullptr || out_size == 0)
    return 0;
  try {
    return phone_normalize(in, region, out, out_size);
  } catch (...) {
    out[0] = '\0';
    return 0;
  }
}

extern "C" int cm_phone_region_valid(const char *region) {
  if (region == nullptr)
    return 0;
  try {
    return region_valid(region);
  } catch (...) {
    return 0;
  }
}
