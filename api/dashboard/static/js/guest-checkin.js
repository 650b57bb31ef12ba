// The till's "check in a guest": a member code (8 digits) or a card's URL from the NFC reader,
// sent as POST /v1/staff-checkins at the till's venue (the form's data-venue-id).

import { api, el } from "./common.js";

const form = document.getElementById("guest-form");
const input = document.getElementById("guest_code");
const venueId = document.getElementById("till-form")?.dataset.venueId;
const result = document.getElementById("guest-result");

const REFUSALS = {
  member_code_invalid: ["Member code not valid", "Ask the guest to show the code their app shows now (it changes every minute)."],
  tap_invalid: ["Card not recognised", "This card or wristband is not registered (or was removed), or the read was garbled: read it again."],
  tap_replayed: ["Card read already used", "Hold the card to the reader again: every read is good once."],
  too_many_attempts: ["Too many wrong codes", ""],
};

// A fresh Idempotency-Key per guest: a retried tap cannot check in twice.
const newKey = () =>
  [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");

function show(kind, heading, lines = []) {
  result.className = `result result-${kind}`;
  result.replaceChildren(el("h3", {}, heading), ...lines.filter(Boolean).map((line) => el("p", {}, line)));
  result.focus();
}

/** What the staff typed or the reader typed: a member code, or a card read. */
export function parseGuest(raw) {
  const text = raw.trim();
  const digits = text.replace(/[\s-]/g, "");
  if (/^\d{8}$/.test(digits)) return { member_code: digits };
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  const picc = url.searchParams.get("picc_data");
  const cmac = url.searchParams.get("cmac");
  if (!picc || !cmac) return null;
  return { card: { picc_data: picc, cmac } };
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!venueId) {
    show("error", "Choose the venue first", ["A visit is at one venue: choose the till's venue above."]);
    return;
  }
  const guest = parseGuest(input.value);
  if (!guest) {
    show("error", "Not a member code or a card", ["Member codes have 8 digits; a card read is the URL the reader types."]);
    input.select();
    return;
  }
  show("pending", "Checking the guest in…");
  let answer;
  try {
    answer = await api("POST", "/staff-checkins", { venue_id: venueId, ...guest }, { headers: { "Idempotency-Key": newKey() } });
  } catch (problem) {
    const [heading, hint] = REFUSALS[problem.code] || ["The guest could not be checked in", ""];
    show("error", heading, [hint || problem.detail]);
    input.select();
    return;
  }
  input.value = "";
  if (answer.status !== "verified") {
    show("error", "Not checked in", answer.reasons.map((r) => r.detail));
    return;
  }
  const unlocked = answer.unlocks.map((u) => `“${u.title}”`);
  show("valid", "Guest checked in", [
    unlocked.length ? `Unlocked ${unlocked.join(", ")}: the code is in the guest's app.` : "Nothing new unlocked on this visit.",
    answer.verification?.staff_exclusion ? "This guest is one of your staff: their visits unlock nothing." : "",
  ]);
  input.focus();
});
