// Till devices, for owners: show a one-time pairing code (and its QR code, a link to the pairing
// page with the code in it), see the device appear when it pairs, list devices with their last
// use, and revoke one (a second button confirms).

import { announce, api, clearProblem, el, fmt, markReady, showProblem } from "./common.js";
import { drawQr } from "./qr.js";
import { venueLabels } from "./venue-words.js";

const list = document.getElementById("devices");
const showRevoked = document.getElementById("show-revoked");
const form = document.getElementById("pair-form");
const labelOf = venueLabels(document.getElementById("venue_id"));
const panel = document.getElementById("pairing");
const POLL_MS = 3000;

let known = new Set(); // device ids listed before the current pairing code was shown
let pairing = null; // {code, expires_at, venue_name, timer, poll}

// ---- the list ----------------------------------------------------------------------------------

async function loadDevices() {
  const devices = (await api("GET", `/devices${showRevoked.checked ? "?include_revoked=true" : ""}`)).devices;
  list.replaceChildren(
    ...(devices.length ? devices.map(item) : [el("li", { class: "empty" }, "No devices yet: pair one above.")]),
  );
  return devices;
}

function nameOf(device) {
  return device.label || "Unnamed device";
}

function item(device) {
  const used = device.last_used_at ? `last used ${fmt.relative(device.last_used_at)}` : "not used yet";
  const meta = device.revoked_at
    ? `${labelOf(device.venue_id, device.venue_name)} · revoked ${fmt.dateTime(device.revoked_at)}`
    : `${labelOf(device.venue_id, device.venue_name)} · paired ${fmt.dateTime(device.paired_at)} · ${used}`;
  const actions = el("div", { class: "device-actions" });
  if (!device.revoked_at) actions.append(revokeButton(device, actions));
  return el("li", { "data-device-id": device.id },
    el("span", { class: "item-main" },
      el("span", { class: "item-title" }, nameOf(device), device.revoked_at ? el("span", { class: "badge badge-ended" }, " Revoked") : null),
      el("span", { class: "item-meta" }, meta)),
    actions);
}

function revokeButton(device, holder) {
  return el("button", {
    type: "button",
    class: "danger small",
    "aria-label": `Revoke ${nameOf(device)}`,
    onclick: () => confirmRevoke(device, holder),
  }, "Revoke");
}

function confirmRevoke(device, holder) {
  const keep = el("button", {
    type: "button",
    class: "small",
    onclick: () => {
      holder.replaceChildren(revokeButton(device, holder));
      holder.querySelector("button").focus();
    },
  }, "Keep");
  const revoke = el("button", {
    type: "button",
    class: "danger small",
    "aria-label": `Yes, revoke ${nameOf(device)}`,
    onclick: () => revokeDevice(device),
  }, "Yes, revoke");
  holder.replaceChildren(el("span", { class: "muted" }, "It stops working at once."), revoke, keep);
  revoke.focus();
}

async function revokeDevice(device) {
  try {
    await api("DELETE", `/devices/${device.id}`);
  } catch (problem) {
    announce(`Not revoked: ${problem.detail}`, { kind: "error" });
    return;
  }
  announce(`Revoked ${nameOf(device)} at ${device.venue_name}: it stopped working.`, { kind: "success" });
  await loadDevices();
  document.getElementById("devices-title").focus();
}

showRevoked.addEventListener("change", loadDevices);

// ---- pairing -----------------------------------------------------------------------------------

function stopPairing() {
  if (!pairing) return;
  clearInterval(pairing.timer);
  clearInterval(pairing.poll);
  pairing = null;
}

function pairUrl(code) {
  return `${location.origin}/dashboard/pair?code=${code.replace("-", "")}`;
}

function tick() {
  if (!pairing) return;
  const left = Math.round((Date.parse(pairing.expires_at) - Date.now()) / 1000);
  const timer = document.getElementById("pairing-timer");
  if (left > 0) {
    timer.textContent = `Works once, for ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} more.`;
    return;
  }
  stopPairing();
  panel.classList.add("expired");
  timer.textContent = "Expired: show a new code.";
}

async function poll() {
  if (!pairing) return;
  let devices;
  try {
    devices = (await api("GET", "/devices")).devices;
  } catch {
    return; // the next poll tries again
  }
  const fresh = devices.find((d) => !known.has(d.id));
  if (!fresh || !pairing) return;
  stopPairing();
  panel.classList.add("paired"); // the code is used: it and its QR code go
  document.getElementById("pairing-timer").textContent = "";
  document.getElementById("pairing-state").textContent = `Paired: ${nameOf(fresh)} at ${fresh.venue_name}. It opens the till there now.`;
  await loadDevices();
}

if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    const venue = form.venue_id.value;
    if (!venue) {
      showProblem(form, { errors: { venue_id: ["Choose the venue the device works at."] } });
      return;
    }
    let created;
    try {
      known = new Set((await api("GET", "/devices")).devices.map((d) => d.id));
      created = await api("POST", "/devices/pairings", { venue_id: venue, label: form.label.value.trim() || null });
    } catch (problem) {
      showProblem(form, problem);
      return;
    }
    stopPairing();
    pairing = { ...created };
    panel.hidden = false;
    panel.classList.remove("expired", "paired");
    document.getElementById("pairing-venue").textContent = created.venue_name;
    document.getElementById("pairing-code").textContent = created.code;
    document.getElementById("pairing-url").textContent = `${location.origin}/dashboard/pair`;
    document.getElementById("pairing-state").textContent = "Waiting for the device…";
    drawQr(document.getElementById("pairing-qr"), pairUrl(created.code));
    pairing.timer = setInterval(tick, 1000);
    pairing.poll = setInterval(poll, POLL_MS);
    tick();
    panel.focus();
  });
  document.getElementById("pairing-close").addEventListener("click", () => {
    stopPairing();
    panel.hidden = true;
    document.getElementById("new-pairing").focus();
  });
}

loadDevices().then(markReady, (problem) => {
  list.replaceChildren(el("li", { class: "empty" }, `The devices could not be loaded: ${problem.detail}`));
  markReady();
});
