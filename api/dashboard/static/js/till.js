// The till: type or scan a code, see at once whether it is good and for what, and redeem it; and
// the venue's day (redemptions and check-ins), read from the server so it survives a reload.
//
// The check is the API's (POST /v1/redemptions/check): it records the attempt, so a code refused
// here reaches the leak report. Scanners that type the QR payload (CHECKIN-OFFERS:<code>) and
// Enter work as a keyboard; the camera reads the same payload (scanner.js).

import { api, el, fmt, markReady } from "./common.js";
import { ScannerError, startScanner } from "./scanner.js";

const form = document.getElementById("till-form");
const input = document.getElementById("code");
const result = document.getElementById("result");
const scanButton = document.getElementById("scan");
const scanner = document.getElementById("scanner");
const video = document.getElementById("camera");
const scanStatus = document.getElementById("scan-status");
const stopButton = document.getElementById("stop-scan");
const VENUE = form.dataset.venueId;
const VENUE_NAME = form.dataset.venueName;
const ZONE = form.dataset.timezone;
// The code format comes from the page, which takes it from offers/codes.py: Crockford base32
// with a mod-37 check symbol, so a typo is caught here at once.
const QR_PREFIX = form.dataset.codeQrPrefix;
const SYMBOLS = form.dataset.codeSymbols;
const CHECK_SYMBOLS = form.dataset.codeCheckSymbols;
const LENGTH = Number(form.dataset.codeLength);

/** The canonical code (11 symbols, no dashes) of what was typed or scanned, or null. */
export function normalize(raw) {
  let code = raw.trim();
  if (code.toUpperCase().startsWith(QR_PREFIX)) code = code.slice(QR_PREFIX.length);
  code = code.replace(/[\s\-\u2010-\u2014\u2212]/g, "").toUpperCase().replace(/[IL]/g, "1").replace(/O/g, "0");
  if (code.length !== LENGTH) return null;
  let value = 0n;
  for (const symbol of code.slice(0, LENGTH - 1)) {
    const v = SYMBOLS.indexOf(symbol);
    if (v < 0) return null;
    value = value * 32n + BigInt(v);
  }
  return CHECK_SYMBOLS[Number(value % BigInt(CHECK_SYMBOLS.length))] === code[LENGTH - 1] ? code : null;
}

const pretty = (code) => `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`;
const quoted = (title) => (title ? `“${title}”` : "This code");
// "just now" rather than "in 0 s" when the till's clock is a little behind the server's.
const ago = (iso) => (Math.abs(Date.parse(iso) - Date.now()) < 60_000 ? "just now" : fmt.relative(iso));
const at = (iso) => `${fmt.time(iso, ZONE)} on ${new Date(iso).toLocaleDateString("en-GB", { timeZone: ZONE, day: "numeric", month: "short" })}`;

let checked = null; // {code, title, key}: the code the Redeem button redeems
let camera = null; // the scanner's controls while the camera is on
let scanRun = 0; // each start of the camera is a run; a code read or a stop ends it
let cameraWanted = false; // staff chose the camera: it comes back for the next code

// A fresh Idempotency-Key per checked code: a retried tap cannot redeem twice.
const newKey = () =>
  [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");

function show(kind, heading, lines = [], actions = []) {
  result.className = `result result-${kind}`;
  const children = [el("h2", {}, heading), ...lines.filter(Boolean).map((line) => el("p", {}, line))];
  if (actions.length) children.push(el("div", { class: "actions" }, actions));
  result.replaceChildren(...children);
}

function nextButton() {
  return el("button", { type: "button", class: "next", onclick: reset }, cameraWanted ? "Scan the next code" : "Next code");
}

function reset() {
  checked = null;
  input.value = "";
  result.replaceChildren();
  result.className = "result";
  if (cameraWanted) startCamera();
  else input.focus();
}

// ---- checking and redeeming ------------------------------------------------------------------

async function check(raw) {
  if (!raw.trim()) {
    show("error", "Type or scan a code first.");
    input.focus();
    return;
  }
  const code = normalize(raw);
  if (!code) {
    checked = null;
    show("error", "Not a valid code", [
      "A symbol is mistyped or missing: check it against the customer's screen. (Codes have 11 symbols, like 7K3Q-XM9T-2RK.)",
    ], [nextButton()]);
    input.select();
    return;
  }
  input.value = pretty(code);
  show("pending", `Checking ${pretty(code)}…`);
  let answer;
  try {
    answer = await api("POST", "/redemptions/check", { code, venue_id: VENUE });
  } catch (problem) {
    show("error", "The code could not be checked", [problem.detail], [nextButton()]);
    return;
  }
  checked = { code, title: answer.title, key: newKey() };
  loadDay(); // the customer's check-in may be moments old
  const title = quoted(answer.title);
  switch (answer.outcome) {
    case "valid":
      show("valid", `Valid: ${answer.title}`, [
        `Unlocked ${ago(answer.unlocked_at)}; expires ${fmt.relative(answer.expires_at)} (${at(answer.expires_at)}).`,
        answer.venues.length ? `Good at ${answer.venues.map((v) => v.name).join(", ")}.` : "",
      ], [
        el("button", { type: "button", class: "primary big", id: "redeem", onclick: redeem }, `Redeem ${title}`),
        el("button", { type: "button", onclick: reset }, "Cancel"),
      ]);
      document.getElementById("redeem").focus(); // Enter redeems
      return;
    case "already_redeemed": {
      const r = answer.redemption;
      const where = r?.venue_name ? ` at ${r.venue_name}${r.till ? ` (${r.till})` : ""}` : "";
      show("error", "Already redeemed", [
        `${title} was redeemed ${ago(r.redeemed_at)}, at ${at(r.redeemed_at)}${where}. A code works only once.`,
      ], [nextButton()]);
      break;
    }
    case "expired":
      show("error", "Expired", [`${title} expired ${fmt.relative(answer.expires_at)}, at ${at(answer.expires_at)}.`], [nextButton()]);
      break;
    case "wrong_venue":
      show("error", "Not valid at this venue", [
        `${title} is for ${answer.venues.map((v) => v.name).join(", ") || "other venues"}, not ${VENUE_NAME}.`,
      ], [nextButton()]);
      break;
    default:
      show("error", "Unknown code", ["No code like this was issued by this merchant. Check it against the customer's screen."], [nextButton()]);
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
  const { code, key } = checked;
  try {
    const done = await api("POST", "/redemptions", { code, venue_id: VENUE }, { headers: { "Idempotency-Key": key } });
    show("success", `Redeemed: ${done.title}`, [`Code ${pretty(code)} at ${fmt.time(done.redeemed_at, ZONE)}. Hand over the offer.`], [nextButton()]);
    checked = null;
  } catch (problem) {
    show("error", REFUSALS[problem.code] || "Not redeemed", [problem.detail], [nextButton()]);
  }
  input.select(); // back in the code field: the next code typed or scanned replaces this one
  loadDay();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  check(input.value);
});
input.addEventListener("input", () => {
  // A new code is being typed: the last answer no longer applies.
  checked = null;
  if (!result.classList.contains("result-pending")) {
    result.replaceChildren();
    result.className = "result";
  }
});

// ---- the camera ------------------------------------------------------------------------------

async function startCamera() {
  cameraWanted = true;
  scanner.hidden = false;
  scanner.classList.remove("paused");
  scanButton.setAttribute("aria-expanded", "true");
  scanButton.disabled = true;
  if (camera) return;
  scanStatus.textContent = "Starting the camera…";
  const run = ++scanRun;
  try {
    // A code may be read before the camera's start has even answered: the run tells.
    const controls = await startScanner(video, (text) => run === scanRun && onScanned(text), {
      src: form.dataset.scanner,
    });
    if (run !== scanRun) {
      controls.stop(); // read or stopped while starting
      return;
    }
    camera = controls;
    scanStatus.textContent = "Hold the customer's QR code in front of the camera.";
    stopButton.focus();
  } catch (error) {
    if (run !== scanRun) return;
    stopCamera();
    show("error", "The camera is not available", [error instanceof ScannerError ? error.message : String(error)]);
    input.focus();
  }
}

/** Stop the camera; with `paused`, it stays on screen and comes back for the next code. */
function stopCamera({ paused = false } = {}) {
  scanRun += 1;
  if (camera) camera.stop();
  camera = null;
  if (!paused) cameraWanted = false;
  scanner.hidden = !paused;
  scanner.classList.toggle("paused", paused);
  scanButton.setAttribute("aria-expanded", String(paused));
  scanButton.disabled = false;
}

function onScanned(text) {
  const code = normalize(text);
  if (!code) {
    scanStatus.textContent = "That QR code is not an offer code. Show the code from the app's wallet.";
    return;
  }
  // One code at a time: the camera pauses until the next code is wanted.
  stopCamera({ paused: true });
  scanStatus.textContent = `Read ${pretty(code)}. The camera is paused until the next code.`;
  input.value = pretty(code);
  check(code);
}

scanButton.addEventListener("click", startCamera);
stopButton.addEventListener("click", () => {
  stopCamera();
  input.focus();
});
document.addEventListener("visibilitychange", () => {
  if (document.hidden && camera) stopCamera({ paused: true }); // no camera in a hidden tab
});

// ---- the venue's day -------------------------------------------------------------------------

const REASONS = {
  outside_geofence: "outside the venue",
  low_accuracy: "location too rough",
  stale_fix: "old location",
  future_fix: "clock ahead",
  backdated_fix: "dated before the last visit",
  mock_location: "mock location",
  impossible_travel: "impossible travel",
  too_soon: "too soon after the last visit",
  presence_code_invalid: "wrong presence code",
};

const dayRedemptions = document.getElementById("today-redemptions");
const dayCheckins = document.getElementById("today-checkins");
const dayCount = document.getElementById("today-count");

function listOrEmpty(list, items, empty) {
  list.replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, empty)]));
}

async function loadDay() {
  let day;
  try {
    day = await api("GET", `/venues/${VENUE}/till-day`);
  } catch (problem) {
    dayCount.textContent = `Could not load the day: ${problem.detail}`;
    return;
  }
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  dayCount.textContent = `${plural(day.redemptions_total, "redemption", "redemptions")} · ${plural(day.checkins_total, "check-in", "check-ins")}`;
  listOrEmpty(
    dayRedemptions,
    day.redemptions.map((r) =>
      el("li", {},
        el("span", { class: "item-main" },
          el("span", { class: "item-title" }, r.title),
          el("span", { class: "item-meta" }, `${fmt.time(r.redeemed_at, ZONE)} · ${r.code}${r.till ? ` · ${r.till}` : ""}`))),
    ),
    "Nothing redeemed here yet today.",
  );
  listOrEmpty(
    dayCheckins,
    day.checkins.map((c) => {
      const verified = c.status === "verified";
      const what = verified
        ? (c.unlocked.length ? `unlocked ${c.unlocked.join(", ")}` : "nothing unlocked")
        : c.reasons.map((reason) => REASONS[reason] || reason).join(", ");
      return el("li", { class: verified ? "checkin-ok" : "checkin-rejected" },
        el("span", { class: "item-main" },
          el("span", { class: "item-title" }, `${verified ? "✓ Verified" : "✕ Rejected"}`),
          el("span", { class: "item-meta" }, `${fmt.time(c.created_at, ZONE)} · ${what}`)));
    }),
    "No check-ins here yet today.",
  );
}

setInterval(() => {
  if (!document.hidden) loadDay();
}, 60_000);
loadDay().then(markReady);
