/*
 * fuzz_timestamp.c — dfs_timestamp_parse / dfs_timestamp_format.
 *
 * Properties:
 *  1. REFERENCE: the parser accepts exactly what an independent, plainly
 *     written RFC 3339 checker accepts (below; calendar rules by table,
 *     seconds by timegm(3) — different code from meta.c's civil-day
 *     arithmetic), and both give the same instant.
 *  2. ROUND TRIP (parse side): an accepted timestamp formats (unless its
 *     year, after the zone offset, leaves 0000..9999) and parses back to
 *     the same instant, and formatting is canonical (UTC, 'Z', trailing
 *     zeros of the fraction dropped, as Go writes).
 *  3. ROUND TRIP (format side): the first 12 input bytes taken as an
 *     instant (seconds clamped to the representable years, nanoseconds mod
 *     1e9) format and parse back to exactly that instant.
 */
#include <string.h>
#include <time.h>

#include "deltafs/error.h"
#include "deltafs/meta.h"
#include "fuzz.h"

static int dig(const char *s, size_t n, int *out)
{
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

/* The reference: 1 and the instant, or 0. */
static int reference(const char *s, size_t len, int64_t *sec, int32_t *nsec)
{
  static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0, dim;
  long frac = 0;
  size_t i;
  struct tm tm;

  if (len < 20)
    return 0;
  if (!dig(s, 4, &y) || s[4] != '-' || !dig(s + 5, 2, &mo) || s[7] != '-' ||
      !dig(s + 8, 2, &d) || !(s[10] == 'T' || s[10] == 't') || !dig(s + 11, 2, &h) ||
      s[13] != ':' || !dig(s + 14, 2, &mi) || s[16] != ':' || !dig(s + 17, 2, &se))
    return 0;
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || se > 59)
    return 0;
  dim = mdays[mo - 1] + (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
  if (d < 1 || d > dim)
    return 0;
  i = 19;
  if (s[i] == '.') {
    size_t start = ++i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i == start || i - start > 9)
      return 0;
    for (size_t k = start; k < start + 9; k++)
      frac = frac * 10 + (k < i ? s[k] - '0' : 0);
  }
  if (i >= len)
    return 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    i++;
  } else if (s[i] == '+' || s[i] == '-') {
    sign = s[i] == '-' ? -1 : 1;
    if (len - i != 6 || !dig(s + i + 1, 2, &oh) || s[i + 3] != ':' || !dig(s + i + 4, 2, &om) ||
        oh > 23 || om > 59)
      return 0;
    i += 6;
  } else {
    return 0;
  }
  if (i != len)
    return 0;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  *sec = (int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60);
  *nsec = (int32_t)frac;
  return 1;
}

/* Canonical form check of a formatted timestamp. */
static void canonical(const char *ts, int32_t nsec)
{
  size_t n = strlen(ts);
  if (n < 20 || ts[n - 1] != 'Z' || ts[10] != 'T')
    fuzz_fail("not canonical: %s", ts);
  if (nsec == 0 && n != 20)
    fuzz_fail("zero fraction written: %s", ts);
  if (nsec != 0 && (ts[19] != '.' || ts[n - 2] == '0'))
    fuzz_fail("fraction not minimal: %s", ts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  int64_t sec = 0, rsec = 0, sec2 = 0;
  int32_t nsec = 0, rnsec = 0, nsec2 = 0;
  char ts[DFS_TIMESTAMP_MAX];
  int rc, ref;

  /* 1. reference */
  rc = dfs_timestamp_parse(s, size, &sec, &nsec);
  ref = reference(s, size, &rsec, &rnsec);
  if ((rc == 0) != ref)
    fuzz_fail("parser says %d, reference says %s for \"%.*s\"", rc, ref ? "valid" : "invalid",
              (int)(size > 60 ? 60 : size), s);
  if (rc != 0 && rc != DFS_ECORRUPT)
    fuzz_fail("parse failure is %d, not DFS_ECORRUPT", rc);
  if (rc == 0) {
    if (sec != rsec || nsec != rnsec)
      fuzz_fail("instant %lld.%09d, reference %lld.%09d", (long long)sec, (int)nsec,
                (long long)rsec, (int)rnsec);
    /* 2. parse -> format -> parse */
    rc = dfs_timestamp_format(sec, nsec, ts, sizeof ts);
    if (rc == 0) {
      canonical(ts, nsec);
      if (dfs_timestamp_parse(ts, strlen(ts), &sec2, &nsec2) != 0 || sec2 != sec || nsec2 != nsec)
        fuzz_fail("round trip of \"%.*s\" via \"%s\" failed", (int)size, s, ts);
    } else if (rc != DFS_EINVAL) {
      fuzz_fail("format failed with %d", rc);
    }
  }
  /* 3. instant -> format -> parse */
  if (size >= 12) {
    uint64_t u;
    uint32_t n;
    /* 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z */
    const int64_t lo = INT64_C(-62167219200), hi = INT64_C(253402300799);
    memcpy(&u, data, 8);
    memcpy(&n, data + 8, 4);
    sec = lo + (int64_t)(u % (uint64_t)(hi - lo + 1));
    nsec = (int32_t)(n % 1000000000u);
    if (dfs_timestamp_format(sec, nsec, ts, sizeof ts) != 0)
      fuzz_fail("cannot format %lld.%09d", (long long)sec, (int)nsec);
    canonical(ts, nsec);
    if (dfs_timestamp_parse(ts, strlen(ts), &sec2, &nsec2) != 0 || sec2 != sec || nsec2 != nsec)
      fuzz_fail("%lld.%09d -> \"%s\" -> %lld.%09d", (long long)sec, (int)nsec, ts,
                (long long)sec2, (int)nsec2);
    if (reference(ts, strlen(ts), &rsec, &rnsec) != 1 || rsec != sec)
      fuzz_fail("the reference disagrees with \"%s\"", ts);
  }
  return 0;
}
