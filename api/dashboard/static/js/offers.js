// The offers list: each offer in plain words, with its status and the moves it allows
// (draft -> active <-> paused -> ended).
//
// The offer just saved comes first and is highlighted (a new draft used to land at the bottom,
// out of sight). After a move, the card's new buttons ignore taps for a moment: Pause takes
// Activate's place, and the second tap of a double tap must not pause what the first activated.

import { announce, api, el, fmt, markReady } from "./common.js";
import { describeOffer } from "./offer-words.js";
import { venueDetail, venueLabel } from "./venue-words.js";

const PROOF_WORDS = { gps: "GPS", presence_code: "presence code", nfc_tap: "NFC tag tap" };

const container = document.getElementById("offers");
const statusFilter = document.getElementById("status-filter");
const MOVES = {
  draft: [["activate", "Activate"]],
  active: [["pause", "Pause"], ["end", "End"]],
  paused: [["activate", "Activate"], ["end", "End"]],
  ended: [],
};
const STATUS_WORDS = { draft: "Draft", active: "Active", paused: "Paused", ended: "Ended" };

let offers = [];
let venuesById = new Map();
// Redemptions per offer id: ever, and in the last RECENT_DAYS days (the analytics report).
let redeemed = { ever: new Map(), recent: new Map() };
const RECENT_DAYS = 30;
let highlighted = null; // the offer just saved or moved: first in the list, highlighted
const MOVE_GUARD_MS = 800; // a card's buttons ignore taps this long after its move
const settledAt = new Map(); // offer id -> when its buttons take taps again

function zoneOf(offer) {
  return venuesById.get(offer.venue_ids[0])?.timezone || "UTC";
}

function card(offer) {
  // A venue with a namesake is named with its address (or its position), so twins differ.
  const all = [...venuesById.values()];
  const names = offer.venue_ids
    .map((id) => venuesById.get(id))
    .filter(Boolean)
    .map((v) => (all.filter((o) => o.name === v.name).length > 1 ? (v.address ? venueLabel(v) : `${v.name} (${venueDetail(v, all)})`) : v.name));
  const capText = offer.total_cap ? `${fmt.number(offer.unlocked_count)} of ${fmt.number(offer.total_cap)}` : fmt.number(offer.unlocked_count);
  const titleId = `offer-${offer.id}-title`;
  const fresh = offer.id === highlighted;
  return el(
    "article",
    { class: `offer-card status-${offer.status}${fresh ? " just-saved" : ""}`, "aria-labelledby": titleId, "data-offer": offer.id },
    el(
      "header",
      {},
      el("h2", { id: titleId, tabindex: fresh ? "-1" : null }, offer.title),
      el("span", { class: `badge badge-${offer.status}` }, STATUS_WORDS[offer.status]),
    ),
    fresh ? el("p", { class: "just-saved-note" }, "Just saved") : null,
    el("p", { class: "offer-words" }, describeOffer(offer, names, zoneOf(offer)).filter((x) => !x.startsWith("One per") && !x.startsWith("At most") && !x.startsWith("Up to")).slice(0, 3).join(" ")),
    el(
      "dl",
      { class: "facts" },
      el("div", {}, el("dt", {}, "Codes issued"), el("dd", {}, capText)),
      el(
        "div",
        { "data-redemptions": offer.id },
        el("dt", {}, "Redeemed"),
        el("dd", {}, `${fmt.number(redeemed.ever.get(offer.id) ?? 0)} (${fmt.number(redeemed.recent.get(offer.id) ?? 0)} in ${RECENT_DAYS} days)`),
      ),
      el("div", {}, el("dt", {}, "Proof of presence"), el("dd", {}, PROOF_WORDS[offer.min_proof] ?? (offer.requires_presence_code ? "presence code" : "GPS"))),
      el("div", {}, el("dt", {}, "Holdout"), el("dd", {}, `${offer.holdout_pct}%`)),
    ),
    el(
      "div",
      { class: "actions" },
      offer.status !== "ended"
        ? el("a", { class: "button", href: `/dashboard/offers/${offer.id}/edit`, "aria-label": `Edit ${offer.title}` }, "Edit")
        : null,
      MOVES[offer.status].map(([action, label]) =>
        el(
          "button",
          {
            type: "button",
            class: action === "end" ? "danger" : action === "activate" ? "primary" : null,
            "aria-label": `${label} ${offer.title}`,
            "data-move": action,
            disabled: Date.now() < (settledAt.get(offer.id) ?? 0),
            onclick: (event) => move(offer, action, label, event.currentTarget),
          },
          label,
        ),
      ),
      // Last, so a move's new buttons take the old ones' places (the double-tap guard).
      offer.status !== "draft"
        ? el("a", { class: "button", href: `/dashboard/analytics?offer=${offer.id}#funnel-title`, "aria-label": `Funnel of ${offer.title}` }, "Funnel")
        : null,
    ),
  );
}

function render() {
  const wanted = statusFilter.value;
  const shown = offers.filter((o) => !wanted || o.status === wanted);
  const first = shown.findIndex((o) => o.id === highlighted);
  if (first > 0) shown.unshift(...shown.splice(first, 1));
  container.replaceChildren(...shown.map(card));
  if (!shown.length) {
    container.append(
      el("p", { class: "empty" }, offers.length ? "No offer has this status." : "No offers yet. ", offers.length ? null : el("a", { href: "/dashboard/offers/new" }, "Create the first one")),
    );
  }
  container.setAttribute("aria-busy", "false");
}

async function move(offer, action, label, button) {
  if (Date.now() < (settledAt.get(offer.id) ?? 0)) return; // the rest of a double tap
  if (action === "end" && !window.confirm(`End “${offer.title}” for good? An ended offer cannot be activated again.`)) return;
  button.disabled = true;
  try {
    const updated = await api("POST", `/offers/${offer.id}/${action}`);
    offers = offers.map((o) => (o.id === updated.id ? updated : o));
    settledAt.set(updated.id, Date.now() + MOVE_GUARD_MS);
    render();
    setTimeout(() => {
      container.querySelectorAll(`[data-offer="${updated.id}"] button[data-move]`).forEach((b) => {
        b.disabled = false;
      });
    }, MOVE_GUARD_MS);
    announce(`“${updated.title}” is now ${updated.status}.`, { kind: "success" });
    container.querySelector(`[data-offer="${updated.id}"] h2`)?.setAttribute("tabindex", "-1");
    container.querySelector(`[data-offer="${updated.id}"] h2`)?.focus();
  } catch (problem) {
    button.disabled = false;
    announce(`Could not ${label.toLowerCase()} “${offer.title}”: ${problem.detail}`, { kind: "error" });
  }
}

async function start() {
  const since = new Date(Date.now() - RECENT_DAYS * 86400000).toISOString();
  const [offerList, venueList, ever, recent] = await Promise.all([
    api("GET", "/offers"),
    api("GET", "/venues"),
    api("GET", "/analytics/redemptions?group_by=offer"),
    api("GET", `/analytics/redemptions?group_by=offer&from=${encodeURIComponent(since)}`),
  ]);
  const counts = (report) => new Map(report.rows.map((r) => [r.offer_id, r.redemptions]));
  redeemed = { ever: counts(ever), recent: counts(recent) };
  venuesById = new Map(venueList.venues.map((v) => [v.id, v]));
  const order = { active: 0, paused: 1, draft: 2, ended: 3 };
  offers = offerList.offers.sort((a, b) => order[a.status] - order[b.status] || a.title.localeCompare(b.title));
  const saved = new URLSearchParams(location.search).get("saved");
  if (saved) {
    const offer = offers.find((o) => o.id === saved);
    if (offer) {
      announce(`Saved “${offer.title}” (${offer.status}).`, { kind: "success" });
      highlighted = offer.id;
    }
    history.replaceState(null, "", location.pathname);
  }
  render();
  if (highlighted) {
    const card = container.querySelector(`[data-offer="${highlighted}"]`);
    card?.scrollIntoView({ block: "nearest" });
    card?.querySelector("h2")?.focus({ preventScroll: true });
  }
  markReady();
}

statusFilter.addEventListener("change", render);
start().catch((problem) => {
  container.replaceChildren(el("p", { class: "status status-error" }, `The offers could not be loaded: ${problem.detail || problem.message}`));
});
