// Wall-clock times in a venue's IANA time zone <-> UTC instants, with the browser's Intl data.
// A `datetime-local` input holds "YYYY-MM-DDTHH:MM" with no zone; the venue's zone gives it one.

function offsetMs(utcMs, timeZone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    })
      .formatToParts(new Date(utcMs))
      .map((p) => [p.type, p.value]),
  );
  const asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return asUtc - Math.floor(utcMs / 1000) * 1000;
}

/** "2025-03-30T03:30" in "Europe/Helsinki" -> "2025-03-30T00:30:00.000Z". A time skipped by a
 * DST change moves forward by the change, as most calendars do. */
export function wallToUtc(local, timeZone) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local || "");
  if (!match) return null;
  const [y, mo, d, h, mi] = match.slice(1).map(Number);
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  let utc = wall - offsetMs(wall, timeZone);
  utc = wall - offsetMs(utc, timeZone);
  return new Date(utc).toISOString();
}

/** "2025-03-30T00:30:00Z" -> "2025-03-30T03:30" in "Europe/Helsinki". */
export function utcToWall(iso, timeZone) {
  if (!iso) return "";
  const ms = new Date(iso).getTime();
  const local = new Date(ms + offsetMs(ms, timeZone));
  return local.toISOString().slice(0, 16);
}

export function isZone(name) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
