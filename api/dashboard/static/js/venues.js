// Venues on the map: draw and edit polygon or circle geofences (Leaflet-Geoman), or type them.
// The form and the drawing stay in step both ways; the API validates and its errors are shown
// on the form's fields.
//
// Drawing never edits another venue: while a drawing tool is on, a click on a saved fence is a
// corner or a centre, not a choice of that venue (fences overlap in a city centre), and a form
// with unsaved changes is not swapped for another venue's without asking. Replacing the fence
// of a venue that live offers use asks first. Venue names reach the page as text only.

/* global L */
import { announce, api, clearProblem, el, markReady, showProblem } from "./common.js";
import { createMap } from "./basemap.js";
import { mapSearch } from "./map-search.js";
import { CATEGORY_CHOICES, categoryToSave, categoryWords, venueDetail } from "./venue-words.js";

const form = document.getElementById("venue-form");
const list = document.getElementById("venue-list");
const filter = document.getElementById("venue-filter");
const fields = Object.fromEntries(
  ["name", "address", "category", "timezone", "lat", "lon", "radius", "vertices", "checkin_cooldown_minutes", "max_accuracy_m"].map(
    (id) => [id, document.getElementById(id)],
  ),
);
const FENCE_STYLE = { color: "#0b5cad", weight: 2, fillColor: "#0b5cad", fillOpacity: 0.18 };
const EDIT_STYLE = { color: "#b3261e", weight: 3, fillColor: "#b3261e", fillOpacity: 0.15 };

let map;
let venues = [];
const layers = new Map(); // venue id -> Leaflet layer
let editing = null; // venue being edited (null: a new venue)
let shape = null; // the fence being drawn or edited
let drawing = false; // a Geoman drawing tool is on: clicks on the map are corners, not choices
let opened = ""; // the form's values as opened, to tell unsaved changes
let openedFence = ""; // the fence's values as opened, to tell a replaced fence

const round6 = (x) => Math.round(x * 1e6) / 1e6;
const fenceKind = () => form.elements.fence_kind.value;

function setFenceKind(kind) {
  form.elements.fence_kind.value = kind;
  form.querySelectorAll("[data-fence]").forEach((node) => {
    node.hidden = node.dataset.fence !== kind;
  });
}

// ---- the list and the saved fences -----------------------------------------------------------

function layerFor(venue) {
  const [lon, lat] = venue.location.coordinates;
  if (venue.radius_m !== null) return L.circle([lat, lon], { radius: venue.radius_m, ...FENCE_STYLE });
  const g = venue.geofence;
  const latlngs = L.GeoJSON.coordsToLatLngs(g.coordinates, g.type === "Polygon" ? 1 : 2);
  return L.polygon(latlngs, FENCE_STYLE);
}

function describeFence(venue) {
  return venue.radius_m !== null ? `circle, ${Math.round(venue.radius_m)} m` : "polygon";
}

function renderList() {
  const needle = filter.value.trim().toLowerCase();
  const shown = venues.filter(
    (v) => !needle || `${v.name} ${v.address || ""} ${categoryWords(v.category) || ""}`.toLowerCase().includes(needle),
  );
  document.getElementById("venue-count").textContent = `(${venues.length})`;
  list.replaceChildren(
    ...shown.map((venue) =>
      el(
        "li",
        { class: editing?.id === venue.id ? "selected" : null },
        el(
          "button",
          { type: "button", class: "item-main", "data-venue": venue.id, onclick: () => edit(venue) },
          el("span", { class: "item-title" }, venue.name),
          venueDetail(venue, venues) ? el("span", { class: "item-address" }, venueDetail(venue, venues)) : null,
          el("span", { class: "item-meta" }, [categoryWords(venue.category), describeFence(venue), venue.timezone].filter(Boolean).join(" · ")),
        ),
        el("a", { href: `/dashboard/presence/${venue.id}`, class: "item-link", "aria-label": `Presence code of ${venue.name}${venue.address ? `, ${venue.address}` : ""}` }, "Presence code"),
      ),
    ),
  );
  if (!shown.length) list.append(el("li", { class: "empty" }, venues.length ? "No venue matches." : "No venues yet: draw one on the map."));
}

function drawSaved() {
  for (const layer of layers.values()) layer.remove();
  layers.clear();
  for (const venue of venues) {
    if (editing?.id === venue.id) continue; // drawn as the editable shape
    const layer = layerFor(venue).addTo(map);
    // A string would be set as HTML: the name goes in as text.
    layer.bindTooltip(
      el("span", {}, el("span", { class: "tip-name" }, venue.name), venue.address ? el("span", { class: "tip-address" }, venue.address) : null),
      { direction: "top" },
    );
    layer.on("click", () => chooseFromMap(venue));
    layer.options.pmIgnore = true;
    layers.set(venue.id, layer);
  }
}

async function loadVenues() {
  venues = (await api("GET", "/venues")).venues;
  venues.sort((a, b) => a.name.localeCompare(b.name) || (a.address || "").localeCompare(b.address || ""));
  renderList();
  drawSaved();
}

// ---- the shape being edited, kept in step with the form -------------------------------------

function setShape(layer) {
  if (shape && shape !== layer) shape.remove();
  shape = layer;
  if (!shape) return;
  shape.setStyle?.(EDIT_STYLE);
  if (!map.hasLayer(shape)) shape.addTo(map);
  shape.pm.enable({ allowSelfIntersection: true });
  shape.on("pm:edit", () => fieldsFromShape());
  shape.on("pm:dragend", () => fieldsFromShape());
}

function centroid(latlngs) {
  // Planar centroid of the ring (small fences: degrees are fine); the mean if degenerate.
  let area = 0;
  let x = 0;
  let y = 0;
  for (let i = 0; i < latlngs.length; i += 1) {
    const a = latlngs[i];
    const b = latlngs[(i + 1) % latlngs.length];
    const cross = a.lng * b.lat - b.lng * a.lat;
    area += cross;
    x += (a.lng + b.lng) * cross;
    y += (a.lat + b.lat) * cross;
  }
  if (Math.abs(area) < 1e-14) {
    return L.latLng(
      latlngs.reduce((s, p) => s + p.lat, 0) / latlngs.length,
      latlngs.reduce((s, p) => s + p.lng, 0) / latlngs.length,
    );
  }
  return L.latLng(y / (3 * area), x / (3 * area));
}

function outerRing(layer) {
  let rings = layer.getLatLngs();
  while (Array.isArray(rings[0]) && Array.isArray(rings[0][0])) rings = rings[0]; // MultiPolygon
  return Array.isArray(rings[0]) ? rings[0] : rings;
}

function fieldsFromShape() {
  if (!shape) return;
  if (shape instanceof L.Circle) {
    setFenceKind("circle");
    const c = shape.getLatLng();
    fields.lat.value = round6(c.lat);
    fields.lon.value = round6(c.lng);
    fields.radius.value = Math.round(shape.getRadius() * 10) / 10;
  } else {
    setFenceKind("polygon");
    const ring = outerRing(shape);
    fields.vertices.value = ring.map((p) => `${round6(p.lat)}, ${round6(p.lng)}`).join("\n");
    const c = centroid(ring);
    fields.lat.value = round6(c.lat);
    fields.lon.value = round6(c.lng);
  }
}

function parseVertices(text) {
  const points = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const parts = line.split(/[,;\s]+/).filter(Boolean).map(Number);
    if (parts.length !== 2 || parts.some((n) => !Number.isFinite(n))) return null;
    points.push(L.latLng(parts[0], parts[1]));
  }
  return points;
}

function shapeFromFields(changed) {
  const lat = Number(fields.lat.value);
  const lon = Number(fields.lon.value);
  if (fenceKind() === "circle") {
    const radius = Number(fields.radius.value);
    if (!fields.lat.value || !fields.lon.value || !Number.isFinite(lat) || !Number.isFinite(lon) || !(radius > 0)) return;
    if (shape instanceof L.Circle) {
      shape.setLatLng([lat, lon]);
      shape.setRadius(radius);
    } else {
      setShape(L.circle([lat, lon], { radius, ...EDIT_STYLE }));
    }
  } else {
    const points = parseVertices(fields.vertices.value);
    if (!points || points.length < 3) return;
    if (shape instanceof L.Polygon) shape.setLatLngs(points);
    else setShape(L.polygon(points, EDIT_STYLE));
    shape.pm.disable();
    shape.pm.enable({ allowSelfIntersection: true });
    if (changed === "vertices" || !fields.lat.value || !fields.lon.value) {
      const c = centroid(points);
      fields.lat.value = round6(c.lat);
      fields.lon.value = round6(c.lng);
    }
  }
}

// ---- the form ----------------------------------------------------------------------------

/** A new venue's zone: the one most of the merchant's venues have, else the browser's. */
function usualZone() {
  const counts = new Map();
  for (const v of venues) counts.set(v.timezone, (counts.get(v.timezone) || 0) + 1);
  const [best] = [...counts].sort((a, b) => b[1] - a[1]);
  return best?.[0] || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function openForm(venue) {
  editing = venue;
  clearProblem(form);
  form.hidden = false;
  document.getElementById("venue-form-title").textContent = venue ? `Edit ${venue.name}` : "New venue";
  document.getElementById("delete-venue").hidden = !venue;
  fields.name.value = venue?.name ?? "";
  fields.address.value = venue?.address ?? "";
  fields.category.value = categoryWords(venue?.category) ?? "";
  fields.timezone.value = venue?.timezone ?? usualZone();
  fields.checkin_cooldown_minutes.value = venue?.checkin_cooldown_minutes ?? 60;
  fields.max_accuracy_m.value = venue?.max_accuracy_m ?? 100;
  fields.lat.value = "";
  fields.lon.value = "";
  fields.radius.value = venue ? "" : 50;
  fields.vertices.value = "";
  drawSaved();
  renderList();
  if (venue) {
    setShape(layerFor(venue));
    fieldsFromShape();
    // Without animation: Leaflet ignores a new zoom while an animated one is under way.
    map.fitBounds(shape.getBounds(), { maxZoom: 18, padding: [40, 40], animate: false });
  } else {
    setShape(null);
    setFenceKind("circle");
  }
  remember();
}

function closeForm() {
  editing = null;
  setShape(null);
  map.pm.disableDraw();
  form.hidden = true;
  drawSaved();
  renderList();
}

function edit(venue) {
  openForm(venue);
  fields.name.focus();
}

/** The form's values, and the fence's alone, to compare with what was opened. */
function formValues() {
  return JSON.stringify([fenceKind(), ...Object.values(fields).map((input) => input.value)]);
}
function fenceValues() {
  return JSON.stringify([fenceKind(), fields.lat.value, fields.lon.value, fields.radius.value, fields.vertices.value]);
}
function remember() {
  opened = formValues();
  openedFence = fenceValues();
}
const unsaved = () => !form.hidden && (formValues() !== opened || (!editing && shape !== null));

/** A click on a saved fence. While drawing it is a corner (Geoman has it), never a choice. */
function chooseFromMap(venue) {
  if (drawing || editing?.id === venue.id) return;
  if (unsaved()) {
    const what = editing ? `your changes to ${editing.name}` : "the new venue";
    if (!window.confirm(`Leave ${what} unsaved and edit ${venue.name}?`)) return;
  }
  edit(venue);
}

/** Whether to go on saving: replacing the fence of a venue that live offers use asks first. */
async function fenceReplaceAgreed() {
  if (!editing || fenceValues() === openedFence) return true;
  const live = (await api("GET", "/offers")).offers.filter(
    (o) => o.status === "active" && o.venue_ids.includes(editing.id),
  );
  if (!live.length) return true;
  const titles = live.map((o) => `“${o.title}”`).join(", ");
  return window.confirm(
    `Replace the fence of ${editing.name}? ${live.length === 1 ? "A live offer uses" : `${live.length} live offers use`} it: ${titles}. ` +
      "Check-ins there are checked against the new fence from now on.",
  );
}

function body() {
  const number = (input) => (input.value.trim() === "" ? undefined : Number(input.value));
  const data = {
    name: fields.name.value.trim(),
    category: categoryToSave(fields.category.value, editing?.category),
    address: fields.address.value.trim() || null,
    timezone: fields.timezone.value.trim(),
    location: { type: "Point", coordinates: [number(fields.lon), number(fields.lat)] },
    checkin_cooldown_minutes: number(fields.checkin_cooldown_minutes),
    max_accuracy_m: number(fields.max_accuracy_m),
  };
  if (fenceKind() === "circle") {
    data.radius_m = number(fields.radius);
    if (editing) data.geofence = null;
  } else {
    const points = parseVertices(fields.vertices.value) || [];
    const ring = points.map((p) => [p.lng, p.lat]);
    if (ring.length) ring.push(ring[0]);
    data.geofence = { type: "Polygon", coordinates: [ring] };
    if (editing) data.radius_m = null;
  }
  return data;
}

function localProblems() {
  const errors = {};
  if (!fields.name.value.trim()) errors.name = ["Give the venue a name."];
  for (const id of ["lat", "lon"]) {
    if (fields[id].value.trim() === "" || !Number.isFinite(Number(fields[id].value))) {
      errors[id] = ["Draw the fence on the map, or type the location as a number."];
    }
  }
  if (fenceKind() === "polygon") {
    const points = parseVertices(fields.vertices.value);
    if (!points) errors.vertices = ["Each line needs a latitude and a longitude, as numbers."];
    else if (points.length < 3) errors.vertices = ["A polygon needs at least three corners."];
  }
  return errors;
}

const FIELD_FOR = {
  location: "lat",
  radius_m: "radius",
  "location.coordinates": "lat",
};

async function save(event) {
  event.preventDefault();
  const local = localProblems();
  if (Object.keys(local).length) {
    showProblem(form, { detail: "Some fields need attention.", errors: local });
    return;
  }
  const button = document.getElementById("save-venue");
  button.disabled = true;
  try {
    if (!(await fenceReplaceAgreed())) {
      announce(`Not saved: the fence of ${editing.name} is unchanged.`);
      return;
    }
    const data = body();
    const saved = editing ? await api("PATCH", `/venues/${editing.id}`, data) : await api("POST", "/venues", data);
    const wasNew = !editing;
    closeForm();
    await loadVenues();
    announce(`${wasNew ? "Created" : "Saved"} ${saved.name}.`, { kind: "success" });
    list.querySelector(`[data-venue="${saved.id}"]`)?.focus();
  } catch (problem) {
    const fieldFor = (name) =>
      name === "geofence" || name.startsWith("geofence.") ? (fenceKind() === "circle" ? "radius" : "vertices") : FIELD_FOR[name] || name;
    if (problem.code === "invalid_geometry" && !Object.keys(problem.errors).length) {
      problem.errors = { geofence: [problem.detail] };
    }
    showProblem(form, problem, fieldFor);
  } finally {
    button.disabled = false;
  }
}

async function remove() {
  if (!editing) return;
  const name = editing.name;
  if (!window.confirm(`Delete ${name}? Its offers will no longer list it; its history stays for analytics.`)) return;
  try {
    await api("DELETE", `/venues/${editing.id}`);
    closeForm();
    await loadVenues();
    announce(`Deleted ${name}.`, { kind: "success" });
    document.getElementById("new-venue").focus();
  } catch (problem) {
    showProblem(form, problem);
  }
}

// ---- start ---------------------------------------------------------------------------------

async function start() {
  map = await createMap(document.getElementById("map"));
  mapSearch(document.querySelector(".map-search"), map, { venues: () => venues });
  document.getElementById("categories").replaceChildren(...CATEGORY_CHOICES.map((words) => el("option", { value: words })));
  map.pm.setGlobalOptions({ allowSelfIntersection: true, snappable: false });
  map.pm.addControls({
    position: "topleft",
    drawMarker: false,
    drawCircleMarker: false,
    drawPolyline: false,
    drawRectangle: false,
    drawText: false,
    drawPolygon: true,
    drawCircle: true,
    editMode: false,
    dragMode: false,
    cutPolygon: false,
    removalMode: false,
    rotateMode: false,
  });
  // Geoman's buttons are links named only by their container's tooltip: give them a name.
  document.querySelectorAll(".leaflet-pm-toolbar .button-container[title]").forEach((node) => {
    node.querySelector("a.leaflet-buttons-control-button")?.setAttribute("aria-label", node.title);
  });
  // Geoman's handles are Leaflet markers, buttons without a name: name the corners; the marker
  // that follows the pointer while drawing is no control at all, so it leaves the tab order.
  map.on("layeradd", (event) => {
    const node = event.layer.getElement?.();
    if (!node?.classList.contains("marker-icon") || node.hasAttribute("aria-label")) return;
    if (node.classList.contains("cursor-marker")) {
      node.removeAttribute("role");
      node.setAttribute("tabindex", "-1");
      node.setAttribute("aria-hidden", "true");
    } else if (node.classList.contains("marker-icon-middle")) {
      node.setAttribute("aria-label", "Add a corner here: drag it");
    } else {
      node.setAttribute("aria-label", "A corner of the fence: drag it to move it");
    }
  });
  // On a phone, Geoman's own Finish / Remove Last Vertex / Cancel bar lies across the top of the
  // map, where a tap meant for a corner cancels the drawing, and the tool buttons toggle it off.
  // There (CSS, max-width 600px) both hide while drawing, and these buttons under the map
  // (outside it, so that nothing above the map moves) do the same work.
  const mapNode = document.getElementById("map");
  const actions = document.getElementById("draw-actions");
  let drawingShape = null;
  map.on("pm:drawstart", (event) => {
    drawing = true;
    drawingShape = event.shape;
    mapNode.classList.add("map-drawing");
    actions.hidden = false;
    document.getElementById("draw-what").textContent = event.shape === "Circle" ? "Drawing a circle: tap the centre, then the edge." : "Drawing a polygon: tap each corner.";
    actions.querySelectorAll("[data-draw-action=finish], [data-draw-action=undo]").forEach((b) => {
      b.hidden = event.shape !== "Polygon";
    });
    if (form.hidden) openForm(null);
  });
  map.on("pm:drawend", () => {
    drawing = false;
    drawingShape = null;
    mapNode.classList.remove("map-drawing");
    actions.hidden = true;
  });
  actions.addEventListener("click", (event) => {
    const what = event.target.closest("[data-draw-action]")?.dataset.drawAction;
    const tool = drawingShape && map.pm.Draw[drawingShape];
    if (!what || !tool) return;
    if (what === "stop") map.pm.disableDraw();
    else if (what === "undo") tool._removeLastVertex?.();
    else if (what === "finish") {
      if ((tool._layer?.getLatLngs?.().length ?? 0) < 3) {
        announce("A polygon needs at least three corners: tap the map to add them.");
        return;
      }
      tool._finishShape?.();
    }
  });
  map.on("pm:create", (event) => {
    if (form.hidden) openForm(null);
    event.layer.remove();
    const layer = event.shape === "Circle"
      ? L.circle(event.layer.getLatLng(), { radius: event.layer.getRadius(), ...EDIT_STYLE })
      : L.polygon(event.layer.getLatLngs(), EDIT_STYLE);
    setShape(layer);
    fieldsFromShape();
    announce(
      editing
        ? `New fence drawn for ${editing.name}: save to replace its fence, or cancel.`
        : `${event.shape === "Circle" ? "Circle" : "Polygon"} drawn: fill in the form and save.`,
    );
  });

  form.addEventListener("submit", save);
  form.addEventListener("change", (event) => {
    if (event.target.name === "fence_kind") {
      setFenceKind(fenceKind());
      if (shape) {
        setShape(null);
      }
      shapeFromFields();
    } else if (["lat", "lon", "radius", "vertices"].includes(event.target.id)) {
      shapeFromFields(event.target.id);
    }
  });
  document.getElementById("new-venue").addEventListener("click", () => {
    openForm(null);
    fields.name.focus();
  });
  document.getElementById("cancel-venue").addEventListener("click", () => {
    closeForm();
    document.getElementById("new-venue").focus();
  });
  document.getElementById("delete-venue").addEventListener("click", remove);
  filter.addEventListener("input", renderList);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !form.hidden && document.activeElement?.closest("#venue-form")) closeForm();
  });

  await loadVenues();
  if (venues.length) {
    const bounds = L.featureGroup([...layers.values()]).getBounds();
    map.fitBounds(bounds, { maxZoom: 17, padding: [30, 30], animate: false });
  }
  markReady();
}

start().catch((error) => {
  announce(`The map could not start: ${error.message}`, { kind: "error" });
  throw error;
});
