// The presence-code screen for a tablet at the counter: the venue's current code as a large QR
// code and as digits, fetched again when it rotates (every minute). The previous code is still
// accepted by the server, so a customer who scanned just before the change is fine.

import { api, markReady } from "./common.js";
import { drawQr } from "./qr.js";

const box = document.getElementById("presence");
const venueId = box.dataset.venueId;
const codeText = document.getElementById("code");
const timer = document.getElementById("timer");
const svg = document.getElementById("qr");

let current = null; // {code, valid_until}
let skew = 0; // server time minus this device's clock, from the Date header
let retryAt = 0;

const now = () => Date.now() + skew;

async function refresh() {
  try {
    const response = await fetch(`/dashboard/api/venues/${venueId}/presence-code`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (response.status === 401) {
      // Signed out: the generic client sends the browser to the sign-in page.
      await api("GET", `/venues/${venueId}/presence-code`);
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const date = Date.parse(response.headers.get("Date") || "");
    if (Number.isFinite(date)) skew = date - Date.now();
    current = await response.json();
    codeText.textContent = current.code.length === 6 ? `${current.code.slice(0, 3)} ${current.code.slice(3)}` : current.code;
    drawQr(svg, current.code);
    box.classList.remove("stale");
    box.dataset.code = current.code;
  } catch {
    retryAt = Date.now() + 5000;
    box.classList.add("stale");
  }
}

async function tick() {
  const left = current ? Math.ceil((Date.parse(current.valid_until) - now()) / 1000) : 0;
  if (left <= 0 && Date.now() >= retryAt) {
    await refresh();
  }
  const remaining = current ? Math.ceil((Date.parse(current.valid_until) - now()) / 1000) : 0;
  if (!current) timer.textContent = "The code could not be loaded. Trying again…";
  else if (remaining > 0) timer.textContent = `New code in ${remaining} s`;
  else timer.textContent = "Offline: this code may no longer work. Trying again…";
  setTimeout(tick, 1000 - (Date.now() % 1000) + 20);
}

tick().then(() => {
  markReady();
});
