// The offers list: each offer in plain words, with its status and the moves it allows
// (draft -> active <-> paused -> ended).

import { announce, api, el, fmt, markReady } from "./common.js";
import { describeOffer } from "./offer-words.js";

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

function zoneOf(offer) {
  return venuesById.get(offer.venue_ids[0])?.timezone || "UTC";
}

function card(offer) {
  const names = offer.venue_ids.map((id) => venuesById.get(id)?.name).filter(Boolean);
  const capText = offer.total_cap ? `${fmt.number(offer.unlocked_count)} of ${fmt.number(offer.total_cap)}` : fmt.number(offer.unlocked_count);
  const titleId = `offer-${offer.id}-title`;
  return el(
    "article",
    { class: `offer-card status-${offer.status}`, "aria-labelledby": titleId, "data-offer": offer.id },
    el(
      "header",
      {},
      el("h2", { id: titleId }, offer.title),
      el("span", { class: `badge badge-${offer.status}` }, STATUS_WORDS[offer.status]),
    ),
    el("p", { class: "offer-words" }, describeOffer(offer, names, zoneOf(offer)).filter((x) => !x.startsWith("One per") && !x.startsWith("At most") && !x.startsWith("Up to")).slice(0, 3).join(" ")),
    el(
      "dl",
      { class: "facts" },
      el("div", {}, el("dt", {}, "Codes issued"), el("dd", {}, capText)),
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
            onclick: (event) => move(offer, action, label, event.currentTarget),
          },
          label,
        ),
      ),
    ),
  );
}

function render() {
  const wanted = statusFilter.value;
  const shown = offers.filter((o) => !wanted || o.status === wanted);
  container.replaceChildren(...shown.map(card));
  if (!shown.length) {
    container.append(
      el("p", { class: "empty" }, offers.length ? "No offer has this status." : "No offers yet. ", offers.length ? null : el("a", { href: "/dashboard/offers/new" }, "Create the first one")),
    );
  }
  container.setAttribute("aria-busy", "false");
}

async function move(offer, action, label, button) {
  if (action === "end" && !window.confirm(`End “${offer.title}” for good? An ended offer cannot be activated again.`)) return;
  button.disabled = true;
  try {
    const updated = await api("POST", `/offers/${offer.id}/${action}`);
    offers = offers.map((o) => (o.id === updated.id ? updated : o));
    render();
    announce(`“${updated.title}” is now ${updated.status}.`, { kind: "success" });
    container.querySelector(`[data-offer="${updated.id}"] h2`)?.setAttribute("tabindex", "-1");
    container.querySelector(`[data-offer="${updated.id}"] h2`)?.focus();
  } catch (problem) {
    button.disabled = false;
    announce(`Could not ${label.toLowerCase()} “${offer.title}”: ${problem.detail}`, { kind: "error" });
  }
}

async function start() {
  const [offerList, venueList] = await Promise.all([api("GET", "/offers"), api("GET", "/venues")]);
  venuesById = new Map(venueList.venues.map((v) => [v.id, v]));
  const order = { active: 0, paused: 1, draft: 2, ended: 3 };
  offers = offerList.offers.sort((a, b) => order[a.status] - order[b.status] || a.title.localeCompare(b.title));
  const saved = new URLSearchParams(location.search).get("saved");
  if (saved) {
    const offer = offers.find((o) => o.id === saved);
    if (offer) announce(`Saved “${offer.title}” (${offer.status}).`, { kind: "success" });
    history.replaceState(null, "", location.pathname);
  }
  render();
  markReady();
}

statusFilter.addEventListener("change", render);
start().catch((problem) => {
  container.replaceChildren(el("p", { class: "status status-error" }, `The offers could not be loaded: ${problem.detail || problem.message}`));
});
