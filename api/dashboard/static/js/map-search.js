// The map's search box: find the merchant's venues by name or address, and (on the offline
// basemap) the demo city's streets, places, named buildings and addresses; with GEOCODER_URL
// set, addresses anywhere too, asked through the server (GET /dashboard/geocode). Choosing a
// result moves the map there and marks the spot.
//
// A combobox (WAI-ARIA 1.2): type, then Arrow Down/Up through the results and Enter to go;
// Escape closes the list, a second Escape clears the box. Results are text only.

/* global L */
import { api, el } from "./common.js";
import { loadBasemapFile, mapSettings } from "./basemap.js";
import { categoryWords } from "./venue-words.js";

const MAX_OFFLINE = 8;
const GEOCODER_DELAY_MS = 350;

const fold = (text) =>
  String(text)
    .normalize("NFD")
    .replace(/\p{Mn}/gu, "")
    .toLowerCase();

let offlineIndex = null;
/** The offline basemap's names: streets, places, named buildings and addresses. */
function loadOfflineIndex() {
  offlineIndex =
    offlineIndex ||
    Promise.all([
      loadBasemapFile("helsinki-streets.geojson"),
      loadBasemapFile("helsinki-places.json"),
      loadBasemapFile("helsinki-buildings.geojson"),
    ]).then(([streets, places, buildings]) => {
      const entries = [];
      for (const f of streets.features) {
        if (!f.properties.name) continue;
        entries.push({ label: f.properties.name, kind: "Street", bounds: L.geoJSON(f).getBounds() });
      }
      const kinds = { suburb: "District", neighbourhood: "District", quarter: "District", square: "Square", park: "Park", station: "Station" };
      for (const p of places.places) entries.push({ label: p.name, kind: kinds[p.kind] || "Place", latlng: L.latLng(p.at[1], p.at[0]) });
      for (const f of buildings.features) {
        if (f.properties.name) {
          entries.push({ label: f.properties.name, kind: "Building", detail: f.properties.address, bounds: L.geoJSON(f).getBounds() });
        }
      }
      for (const [label, lon, lat] of places.addresses) entries.push({ label, kind: "Address", latlng: L.latLng(lat, lon) });
      for (const entry of entries) entry.key = fold(`${entry.label} ${entry.detail || ""}`);
      return entries;
    })
      .catch((error) => {
        offlineIndex = null;
        throw error;
      });
  return offlineIndex;
}

/** How well `key` matches the folded query: 0 (not), else higher is better. */
function score(key, wanted) {
  if (key.startsWith(wanted)) return 3;
  if (key.includes(` ${wanted}`)) return 2;
  if (key.includes(wanted)) return 1;
  return 0;
}

/**
 * Wire the search box `root` (a `.map-search` with an input[role=combobox], a listbox and a
 * status line) to `map`. `venues()` answers the merchant's venues at the time of the search.
 */
export function mapSearch(root, map, { venues = () => [] } = {}) {
  const input = root.querySelector("input");
  const list = root.querySelector("[role=listbox]");
  const status = root.querySelector("[role=status]");
  let results = [];
  let active = -1;
  let marker = null;
  let asked = 0; // the latest geocoder request, so an older answer does not overwrite a newer one
  let timer = null;

  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  };

  const render = () => {
    list.replaceChildren(
      ...results.map((r, i) =>
        el(
          "li",
          {
            role: "option",
            id: `${list.id}-${i}`,
            class: "map-search-result",
            "aria-selected": String(i === active),
            onmousedown: (event) => event.preventDefault(), // keep the focus in the box
            onclick: () => choose(i),
          },
          el("span", { class: "result-label" }, r.label),
          el("span", { class: "result-kind" }, [r.kind, r.detail].filter(Boolean).join(" · ")),
        ),
      ),
    );
    const open = results.length > 0 && input.value.trim() !== "";
    list.hidden = !open;
    input.setAttribute("aria-expanded", String(open));
    if (active >= 0) {
      input.setAttribute("aria-activedescendant", `${list.id}-${active}`);
      list.children[active]?.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  };

  const say = (text) => {
    status.textContent = text;
  };

  async function find() {
    const query = input.value.trim();
    const wanted = fold(query);
    if (!wanted) {
      results = [];
      close();
      say("");
      return;
    }
    const found = [];
    for (const venue of venues()) {
      const s = score(fold(`${venue.name} ${venue.address || ""}`), wanted) || score(fold(venue.address || ""), wanted);
      if (!s) continue;
      const [lon, lat] = venue.location.coordinates;
      found.push({
        s: s + 10, // the merchant's own venues first
        label: venue.name,
        kind: "Your venue",
        detail: venue.address || categoryWords(venue.category) || "",
        latlng: L.latLng(lat, lon),
        venue,
      });
    }
    if (!mapSettings.tiles) {
      try {
        for (const entry of await loadOfflineIndex()) {
          const s = score(entry.key, wanted);
          if (s) found.push({ ...entry, s });
        }
      } catch {
        // the offline names could not be loaded: the venues are still searched
      }
    }
    if (fold(input.value.trim()) !== wanted) return; // typed on meanwhile
    found.sort((a, b) => b.s - a.s || a.label.length - b.label.length || a.label.localeCompare(b.label));
    results = found.slice(0, MAX_OFFLINE);
    active = -1;
    render();
    say(results.length ? `${results.length} found. Arrow down to choose.` : mapSettings.geocoder ? "Searching addresses…" : "Nothing found on the map.");
    if (mapSettings.geocoder && query.length >= 3) {
      clearTimeout(timer);
      timer = setTimeout(() => geocode(query), GEOCODER_DELAY_MS);
    }
  }

  async function geocode(query) {
    const mine = (asked += 1);
    const c = map.getCenter();
    let places;
    try {
      const answer = await api("GET", `/geocode?q=${encodeURIComponent(query)}&near=${c.lat.toFixed(4)},${c.lng.toFixed(4)}`, undefined, {
        base: "/dashboard",
        headers: { "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]')?.content ?? "" },
      });
      places = answer.places;
    } catch {
      if (mine === asked && !results.length) say("The address search is not answering now.");
      return;
    }
    if (mine !== asked || input.value.trim() !== query) return;
    const more = places.map((p) => ({ label: p.label, kind: "Address search", latlng: L.latLng(p.lat, p.lon) }));
    results = [...results, ...more.filter((m) => !results.some((r) => r.label === m.label))];
    render();
    say(results.length ? `${results.length} found. Arrow down to choose.` : "Nothing found.");
  }

  function choose(i) {
    const r = results[i];
    if (!r) return;
    if (r.bounds) map.fitBounds(r.bounds, { maxZoom: 18, padding: [30, 30], animate: false });
    else map.setView(r.latlng, Math.max(map.getZoom(), 18), { animate: false });
    marker?.remove();
    const at = r.latlng || r.bounds.getCenter();
    marker = L.circleMarker(at, { radius: 10, color: "#b3261e", weight: 3, fillOpacity: 0, interactive: false, className: "search-mark" }).addTo(map);
    input.value = r.label;
    results = [];
    close();
    say(`Map moved to ${r.label}${r.detail ? `, ${r.detail}` : ""}.`);
    root.dispatchEvent(new CustomEvent("found", { detail: r }));
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    find();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!results.length) return;
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      active = (active + step + results.length) % results.length;
      render();
    } else if (event.key === "Enter") {
      event.preventDefault(); // never sends a form it sits in
      if (results.length) choose(active >= 0 ? active : 0);
    } else if (event.key === "Escape") {
      if (!list.hidden) {
        event.preventDefault();
        close();
      } else if (input.value) {
        event.preventDefault();
        input.value = "";
        results = [];
        say("");
      }
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  return { choose };
}
