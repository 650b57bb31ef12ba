// Offers in plain words: what unlocks them and when, for the offer form's preview and the list.
// Times are wall-clock times in the venue's time zone, as the server applies them.

export const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };

function ordinal(n) {
  const s = ["th", "st", "nd", "rd"];
  const v = n % 100;
  return `${n}${s[(v - 20) % 10] || s[v] || s[0]}`;
}

/** ["mon","tue","wed","fri"] -> "Mon–Wed, Fri" */
export function dayRanges(days) {
  const set = new Set(days);
  if (set.size === 7) return "every day";
  const out = [];
  let i = 0;
  while (i < 7) {
    if (!set.has(DAYS[i])) {
      i += 1;
      continue;
    }
    let j = i;
    while (j + 1 < 7 && set.has(DAYS[j + 1])) j += 1;
    out.push(j - i >= 2 ? `${DAY_NAMES[DAYS[i]]}–${DAY_NAMES[DAYS[j]]}` : DAYS.slice(i, j + 1).map((d) => DAY_NAMES[d]).join(", "));
    i = j + 1;
  }
  return out.join(", ");
}

/** What it takes to unlock, as the phrase before "at <venue>" (the API's `unlock` for phones
 * says the same more briefly). */
export function describeRule(rule) {
  const nth = (n) => (Number.isInteger(n) && n > 0 ? ordinal(n) : "Nth");
  switch (rule?.kind) {
    case "every_checkin":
      return "on every verified check-in";
    case "first_visit":
      return "on a customer's first verified visit";
    case "nth_visit":
      return rule.repeat ? `on every ${nth(rule.visits)} verified visit of a customer` : `on a customer's ${nth(rule.visits)} verified visit`;
    case "top_visitor": {
      const least = Number.isInteger(rule.min_visits) && rule.min_visits > 0 ? rule.min_visits : 2;
      return `for the customer with the most verified check-ins over the last ${rule.window_days || 60} days, and at least ${least} of them`;
    }
    case "group":
      return `when at least ${rule.min_people || "N"} people check in within ${rule.within_minutes || "M"} minutes of each other`;
    default:
      return "when its rule is met";
  }
}

/** The rule's fine print, as a sentence (or ""). */
export function ruleNote(rule) {
  switch (rule?.kind) {
    case "nth_visit": {
      const span = rule.within_days ? `Only visits in the last ${rule.within_days} days count` : "";
      if (rule.repeat) return span ? `${span}.` : "";
      return span ? `${span}, and it unlocks once.` : "It unlocks once.";
    }
    case "top_visitor": {
      const least = Number.isInteger(rule.min_visits) && rule.min_visits > 0 ? rule.min_visits : 2;
      return least === 1
        ? "Visits are counted at each venue; a tie does not win."
        : `Visits are counted at each venue; a tie does not win, and nobody wins with fewer than ${least} visits (a first-time visitor on a quiet day is not a regular).`;
    }
    case "group":
      return "Everyone in the group gets it.";
    default:
      return "";
  }
}

export function describeWindows(windows) {
  if (!windows?.length) return "";
  const parts = windows.map((w) => {
    const crosses = w.end < w.start ? " (ending the next day)" : "";
    return `${dayRanges(w.days)} ${w.start}–${w.end}${crosses}`;
  });
  return `only ${parts.join("; ")}`;
}

function localWhen(iso, timeZone) {
  return new Date(iso).toLocaleString("en-GB", {
    timeZone,
    weekday: "short",
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

function duration(minutes) {
  if (minutes % 1440 === 0) return `${minutes / 1440} ${minutes === 1440 ? "day" : "days"}`;
  if (minutes % 60 === 0) return `${minutes / 60} ${minutes === 60 ? "hour" : "hours"}`;
  return `${minutes} minutes`;
}

/**
 * Sentences about an offer: `offer` as the API has it (or the form would send it), the names of
 * its venues, and the time zone its schedule is shown in.
 */
export function describeOffer(offer, venueNames, timeZone) {
  const where = !venueNames.length
    ? "at its venues"
    : venueNames.length === 1
      ? `at ${venueNames[0]}`
      : venueNames.length <= 4
        ? `at ${venueNames.slice(0, -1).join(", ")} or ${venueNames.at(-1)}`
        : `at any of ${venueNames.length} venues (${venueNames.slice(0, 3).join(", ")} and ${venueNames.length - 3} more)`;
  const sentences = [`Unlocks ${describeRule(offer.rule)} ${where}.`];
  const note = ruleNote(offer.rule);
  if (note) sentences.push(note);

  const when = [];
  if (offer.starts_at) when.push(`from ${localWhen(offer.starts_at, timeZone)}`);
  if (offer.ends_at) when.push(`until ${localWhen(offer.ends_at, timeZone)}`);
  const windows = describeWindows(offer.windows);
  if (when.length || windows) {
    sentences.push(
      `${[when.join(" "), windows].filter(Boolean).join(", ").replace(/^./, (c) => c.toUpperCase())} (${timeZone} time).`,
    );
  } else {
    sentences.push("At any time while it is active.");
  }
  const proof = offer.min_proof ?? (offer.requires_presence_code ? "presence_code" : "gps");
  if (proof === "presence_code") sentences.push("The customer must also enter the code shown at the counter (or tap its NFC tag).");
  if (proof === "nfc_tap") sentences.push("The customer must also tap the venue's NFC tag (or be checked in by staff at the till).");
  if (offer.holdout_pct > 0) {
    sentences.push(
      `${offer.holdout_pct}% of eligible customers are held out at random and get nothing, so the offer's lift can be measured.`,
    );
  }
  const caps = [];
  if (offer.total_cap) caps.push(`at most ${offer.total_cap.toLocaleString("en-GB")} codes in all`);
  const perUser = offer.per_user_cap ?? 1;
  caps.push(perUser === 1 ? "one per customer" : `up to ${perUser} per customer`);
  sentences.push(`${caps.join(", ").replace(/^./, (c) => c.toUpperCase())}; each code is valid for ${duration(offer.code_ttl_minutes ?? 1440)}.`);
  if (offer.status === "draft" || !offer.status) sentences.push("Nothing unlocks until the offer is activated.");
  if (offer.status === "paused") sentences.push("It is paused: nothing unlocks until it is activated again; codes already given can still be redeemed until they expire.");
  if (offer.status === "ended") sentences.push("It has ended for good; codes already given can still be redeemed until they expire.");
  return sentences;
}
