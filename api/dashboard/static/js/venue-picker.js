// The offer form's venue picker, for merchants with a few venues or hundreds: find venues by
// name, category or time zone; choose or clear every venue shown; and choose on a map (a pin per
// venue: click or press Enter on one to choose or drop it, or choose every venue in view; a
// search moves the map to the venues it finds).
//
// The checkboxes stay the form's truth (`input[name=venue]`): a venue hidden by the search keeps
// its choice. The map (Leaflet and the offline basemap) loads only when it is opened.

import { el, fmt } from "./common.js";
import { categoryWords, venueLabel } from "./venue-words.js";

const LEAFLET = "/dashboard/static/vendor/leaflet/leaflet.js";

function loadLeaflet() {
  if (window.L) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = el("script", { src: LEAFLET });
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => reject(new Error("the map could not be loaded")));
    document.head.append(script);
  });
}

const words = (venue) =>
  `${venue.name} ${venue.address ?? ""} ${venue.category ?? ""} ${categoryWords(venue.category) ?? ""} ${venue.timezone}`.toLowerCase();

/**
 * Wire the picker in `fieldset` around its checkboxes. `onChange` runs after any change made
 * here (the form's own change events cover a checkbox ticked by hand).
 */
export function venuePicker(fieldset, venues, onChange) {
  const $ = (id) => fieldset.querySelector(`#${id}`);
  const box = $("venue-choices");
  const search = $("venue-search");
  const count = $("venue-count");
  const byId = new Map(venues.map((v) => [v.id, v]));
  const inputs = () => [...box.querySelectorAll('input[name="venue"]')];
  const shown = () => inputs().filter((input) => !input.closest("label").hidden);
  let map = null;
  const pins = new Map(); // venue id -> marker

  function paintPin(id) {
    const marker = pins.get(id);
    const input = box.querySelector(`input[name="venue"][value="${id}"]`);
    const node = marker?.getElement();
    if (!node || !input) return;
    node.classList.toggle("picked", input.checked);
    node.setAttribute("aria-pressed", String(input.checked));
    node.setAttribute("alt", `${venueLabel(byId.get(id))}: ${input.checked ? "chosen" : "not chosen"}`);
  }

  function update() {
    const all = inputs();
    const chosen = all.filter((input) => input.checked).length;
    const visible = shown().length;
    const filtered = search.value.trim() !== "";
    count.textContent = `${fmt.number(chosen)} of ${fmt.number(all.length)} venues chosen${filtered ? `; ${fmt.number(visible)} match “${search.value.trim()}”` : ""}.`;
    $("venues-all").disabled = !visible;
    $("venues-none").disabled = !visible;
    $("venues-all").textContent = filtered ? `Choose the ${fmt.number(visible)} found` : "Choose all";
    $("venues-none").textContent = filtered ? "Clear the ones found" : "Clear all";
    $("venue-none-found").hidden = visible > 0 || !all.length;
    for (const id of pins.keys()) paintPin(id);
  }

  function set(list, checked) {
    for (const input of list) input.checked = checked;
    update();
    onChange();
  }

  // The map shows the venues found (all of them without a search).
  function fitFound() {
    if (!map) return;
    const points = shown().map((input) => [...byId.get(input.value).location.coordinates].reverse());
    if (points.length > 1) map.fitBounds(points, { padding: [24, 24], maxZoom: 16, animate: false });
    else if (points.length) map.setView(points[0], 16, { animate: false });
  }

  search.addEventListener("input", () => {
    const wanted = search.value.trim().toLowerCase();
    for (const input of inputs()) {
      input.closest("label").hidden = Boolean(wanted) && !words(byId.get(input.value)).includes(wanted);
    }
    update();
    if (wanted) fitFound();
  });
  // Enter in the search box finds; it must not send the form.
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault();
  });
  $("venues-all").addEventListener("click", () => set(shown(), true));
  $("venues-none").addEventListener("click", () => set(shown(), false));
  box.addEventListener("change", update);

  const toggle = $("venue-map-toggle");
  const mapBox = $("venue-map-box");
  toggle.addEventListener("click", async () => {
    const open = mapBox.hidden;
    mapBox.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Hide the map" : "Choose on the map";
    if (!open || map) {
      map?.invalidateSize();
      return;
    }
    try {
      await loadLeaflet();
      const { createMap } = await import("./basemap.js");
      const { mapSearch } = await import("./map-search.js");
      map = await createMap($("venue-map"));
      mapSearch(fieldset.querySelector(".map-search"), map, { venues: () => venues });
      for (const venue of venues) {
        const [lon, lat] = venue.location.coordinates;
        const marker = window.L.marker([lat, lon], { title: venueLabel(venue), alt: venueLabel(venue), keyboard: true, riseOnHover: true });
        const flip = () => {
          const input = box.querySelector(`input[name="venue"][value="${venue.id}"]`);
          set([input], !input.checked);
        };
        marker.on("click", flip);
        // A pin is a button for the keyboard too: Enter or Space on it (Tab reaches it).
        marker.on("keypress", (event) => {
          if (event.originalEvent.key !== "Enter" && event.originalEvent.key !== " ") return;
          event.originalEvent.preventDefault();
          flip();
        });
        marker.on("add", () => {
          marker.getElement().classList.add("venue-pin");
          paintPin(venue.id);
        });
        pins.set(venue.id, marker);
        marker.addTo(map);
      }
      fitFound();
      mapBox.dataset.ready = "true";
      update();
    } catch (error) {
      $("venue-map").replaceChildren(el("p", { class: "status status-error" }, `The map could not be shown: ${error.message}`));
    }
  });
  $("venues-in-view").addEventListener("click", () => {
    if (!map) return;
    const bounds = map.getBounds();
    set(inputs().filter((input) => bounds.contains(window.L.latLng([...byId.get(input.value).location.coordinates].reverse()))), true);
  });
  update();
  return { update };
}
