// Analytics by proof of presence: each offer's unlocks of the last 7 days (offer health), the
// period's redemptions by the proof of the visit that earned them and the NFC tags' summary (the
// leak report). docs/presence.md says what each proof is.

import { api, el, fmt } from "./common.js";

const PROOFS = [
  ["gps", "GPS"],
  ["presence_code", "Presence code"],
  ["nfc_tap", "NFC tap"],
  ["staff", "Staff"],
];
const periodSelect = document.getElementById("period");
const tableNode = document.getElementById("proof-table");

function since() {
  const days = periodSelect.value;
  return days ? `?from=${encodeURIComponent(new Date(Date.now() - Number(days) * 86400000).toISOString())}` : "";
}

async function load() {
  const [health, leaks] = await Promise.all([
    api("GET", "/analytics/offers/health"),
    api("GET", `/analytics/leaks${since()}`),
  ]);
  const caption = tableNode.querySelector("caption");
  const rows = health.offers.map((o) =>
    el(
      "tr",
      { "data-offer": o.offer_id },
      el("th", { scope: "row" }, o.title),
      ...PROOFS.map(([key]) => el("td", { class: "num" }, fmt.number(o.unlocks_by_proof?.[key] ?? 0))),
    ),
  );
  tableNode.replaceChildren(
    caption,
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Offer"), ...PROOFS.map(([, label]) => el("th", { scope: "col", class: "num" }, label)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 5 }, "No offers yet."))),
  );
  const red = leaks.redemptions_by_proof || {};
  document.getElementById("proof-redemptions").textContent =
    `Redemptions in the period by proof: ${PROOFS.map(([key, label]) => `${label} ${fmt.number(red[key] ?? 0)}`).join(", ")}.`;
  const nfc = leaks.nfc;
  const refused = Object.values(nfc.taps_refused).reduce((a, b) => a + b, 0);
  document.getElementById("proof-nfc").textContent =
    `NFC tags: ${fmt.number(nfc.taps_accepted)} taps accepted, ${fmt.number(refused)} refused ` +
    `(${fmt.number(nfc.taps_refused.counter_not_above ?? 0)} replayed); ` +
    `${fmt.number(nfc.counter_gaps.skipped_reads)} reads never sent (collected links?); ` +
    `${fmt.number(nfc.staff_checkin_attempts.member_code_invalid)} wrong member codes at the till.`;
  tableNode.dataset.loaded = "true";
}

periodSelect.addEventListener("change", () => load().catch(() => {}));
load().catch((problem) => {
  document.getElementById("proof-redemptions").textContent = `Could not load: ${problem.detail}`;
});
