// The till: type or scan a code, see at once whether it is valid and for what, and redeem it.
// Scanners that type the QR payload (CHECKIN-OFFERS:<code>) and Enter work as a keyboard.

import { api, dashboardCall, el, fmt, markReady } from "./common.js";

const form = document.getElementById("till-form");
const input = document.getElementById("code");
const venue = document.getElementById("venue");
const result = document.getElementById("result");
const recent = document.getElementById("recent");
const QR_PREFIX = "CHECKIN-OFFERS:";

// Crockford base32 with a mod-37 check symbol (offers/codes.py): a typo is caught here at once.
const SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CHECK_SYMBOLS = SYMBOLS + "*~$=U";

export function normalize(raw) {
  let code = raw.trim();
  if (code.toUpperCase().startsWith(QR_PREFIX)) code = code.slice(QR_PREFIX.length);
  code = code.replace(/[\s\-\u2010-\u2014\u2212]/g, "").toUpperCase().replace(/[IL]/g, "1").replace(/O/g, "0");
  if (code.length !== 11) return null;
  let value = 0n;
  for (const symbol of code.slice(0, 10)) {
    const v = SYMBOLS.indexOf(symbol);
    if (v < 0) return null;
    value = value * 32n + BigInt(v);
  }
  return CHECK_SYMBOLS[Number(value % 37n)] === code[10] ? code : null;
}

const pretty = (code) => `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`;
const venueName = () => venue.selectedOptions[0]?.textContent || "";
const STORE = "checkin-offers.till.venue";

let checked = null; // the last check's answer, for the Redeem button

// A fresh Idempotency-Key per checked code: a retried tap cannot redeem twice.
const newKey = () =>
  [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");

function show(kind, heading, lines = [], actions = []) {
  result.className = `result result-${kind}`;
  result.replaceChildren(
    el("h2", {}, heading),
    ...lines.filter(Boolean).map((line) => el("p", {}, line)),
    actions.length ? el("div", { class: "actions" }, actions) : null,
  );
}

function nextButton() {
  return el("button", { type: "button", onclick: reset }, "Next code");
}

function reset() {
  checked = null;
  input.value = "";
  result.replaceChildren();
  result.className = "result";
  input.focus();
}

async function check() {
  const raw = input.value;
  if (!raw.trim()) {
    show("error", "Type or scan a code first.");
    input.focus();
    return;
  }
  const code = normalize(raw);
  if (!code) {
    checked = null;
    show("error", "Not a valid code", ["A symbol is mistyped or missing: check it against the customer's screen. (Codes have 11 symbols, like 7K3Q-XM9T-2RK.)"]);
    input.select();
    return;
  }
  input.value = pretty(code);
  show("pending", `Checking ${pretty(code)}…`);
  let answer;
  try {
    answer = await dashboardCall("POST", "/till/check", { code, venue_id: venue.value || null });
  } catch (problem) {
    show("error", "The code could not be checked", [problem.detail]);
    return;
  }
  checked = { code, ...answer };
  const title = answer.title ? `“${answer.title}”` : "";
  switch (answer.state) {
    case "valid":
      show("valid", `Valid: ${answer.title}`, [
        `Unlocked ${fmt.relative(answer.unlocked_at)}; expires ${fmt.relative(answer.expires_at)} (${fmt.dateTime(answer.expires_at)}).`,
        answer.venues.length ? `Good at ${answer.venues.join(", ")}.` : "",
      ], [
        el("button", { type: "button", class: "primary big", id: "redeem", onclick: redeem }, `Redeem ${title}`),
        el("button", { type: "button", onclick: reset }, "Cancel"),
      ]);
      document.getElementById("redeem").focus(); // Enter redeems
      return;
    case "already_redeemed":
      show("error", "Already redeemed", [
        `${title} was redeemed ${fmt.relative(answer.redeemed_at)}, at ${fmt.dateTime(answer.redeemed_at)}. A code works only once.`,
      ], [nextButton()]);
      break;
    case "expired":
      show("error", "Expired", [`${title} expired ${fmt.relative(answer.expires_at)}, at ${fmt.dateTime(answer.expires_at)}.`], [nextButton()]);
      break;
    case "wrong_venue":
      show("error", "Not valid at this venue", [
        `${title} is for ${answer.venues.join(", ") || "other venues"}, not ${venueName()}.`,
      ], [nextButton()]);
      break;
    case "unknown":
      show("error", "Unknown code", ["No code like this was issued by this merchant. Check it against the customer's screen."], [nextButton()]);
      break;
    default:
      show("error", "Not a valid code", [answer.detail || ""], [nextButton()]);
  }
  input.select(); // the next scan or typed code replaces this one
}

const REFUSALS = {
  not_found: "Unknown code",
  wrong_venue: "Not valid at this venue",
  already_redeemed: "Already redeemed",
  expired: "Expired",
};

async function redeem() {
  if (!checked) return;
  const button = document.getElementById("redeem");
  if (button) button.disabled = true;
  try {
    const done = await api(
      "POST",
      "/redemptions",
      { code: checked.code, venue_id: venue.value || null },
      { headers: { "Idempotency-Key": checked.key || (checked.key = newKey()) } },
    );
    show("success", `Redeemed: ${done.title}`, [`Code ${pretty(checked.code)} at ${fmt.time(done.redeemed_at)}. Hand over the offer.`], [nextButton()]);
    recent.prepend(el("li", {}, el("span", { class: "item-title" }, done.title), el("span", { class: "item-meta" }, `${pretty(checked.code)} · ${fmt.time(done.redeemed_at)}`)));
    document.getElementById("recent-box").hidden = false;
    checked = null;
  } catch (problem) {
    show("error", REFUSALS[problem.code] || "Not redeemed", [problem.detail], [nextButton()]);
  }
  input.select(); // ready for the next code
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  check();
});
input.addEventListener("input", () => {
  // A new code is being typed: the last answer no longer applies.
  checked = null;
  if (!result.classList.contains("result-pending")) {
    result.replaceChildren();
    result.className = "result";
  }
});
const saved = localStorage.getItem(STORE);
if (saved !== null && [...venue.options].some((o) => o.value === saved)) venue.value = saved;
venue.addEventListener("change", () => {
  localStorage.setItem(STORE, venue.value);
  if (checked) check();
});
markReady();
