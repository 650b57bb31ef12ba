// The dashboard's maps. By default the offline basemap: no tile server, only vector data that
// ships with the project. Far out, the world's country outlines (Natural Earth 1:110m, public
// domain); close in, the demo city from OpenStreetMap (ODbL): streets and footways, building
// outlines, and labels (districts, squares and parks, street names, named buildings) placed so
// that they never overlap. Leaflet draws the shapes as SVG; the labels are text in a pane of
// their own.
//
// With MAP_TILE_URL set (docs/configuration.md), a raster tile server replaces all of it; its
// attribution (MAP_TILE_ATTRIBUTION) is shown as text. base.html passes both in meta tags.

/* global L */
import { el } from "./common.js";

const BASE = "/dashboard/static/basemap/";
const STREETS_FROM_ZOOM = 13;
const BUILDINGS_FROM_ZOOM = 15;
const COUNTRIES_UNTIL_ZOOM = 12;
// Labels by kind: shown from this zoom, and which wins a place when two would overlap.
const LABELS = {
  suburb: { from: 14, until: 17.5, priority: 3000 },
  neighbourhood: { from: 14, until: 17.5, priority: 2900 },
  quarter: { from: 15, until: 18, priority: 2800 },
  square: { from: 16, priority: 1500 },
  park: { from: 16, priority: 1400 },
  station: { from: 15, priority: 1600 },
  street: { from: 15.5, priority: 1000 }, // plus the street's length on screen
  building: { from: 17.5, priority: 200 },
};
const CHAR_PX = 6.4; // width of a character of the labels' font, near enough
const LABEL_PX = 14; // their height

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
/** The map settings the server passes (base.html). */
export const mapSettings = {
  tiles: meta("map-tiles"),
  tilesAttribution: meta("map-tiles-attribution"),
  geocoder: meta("map-geocoder") === "on",
};

const cache = new Map();
/** One of the offline basemap's files (fetched once per page). */
export function loadBasemapFile(name) {
  if (!cache.has(name)) {
    cache.set(
      name,
      fetch(BASE + name).then((response) => {
        if (!response.ok) throw new Error(`basemap ${name}: HTTP ${response.status}`);
        return response.json();
      }),
    );
    cache.get(name).catch(() => cache.delete(name)); // try again next time
  }
  return cache.get(name);
}

/** A Leaflet map in `container` with the basemap; resolves when the basemap is drawn. */
export async function createMap(container, { center = [60.1699, 24.9384], zoom = 15 } = {}) {
  const map = L.map(container, {
    center,
    zoom,
    minZoom: 2,
    maxZoom: 19,
    zoomSnap: 0.5,
    worldCopyJump: true,
    preferCanvas: false,
    keyboard: true,
    attributionControl: true,
  });
  map.attributionControl.setPrefix("Leaflet");
  // Where the map looks, for tests and for people's tools: "lat,lon,zoom".
  const note = () => {
    const c = map.getCenter();
    container.dataset.view = `${c.lat.toFixed(5)},${c.lng.toFixed(5)},${map.getZoom()}`;
  };
  map.on("moveend zoomend", note);
  note();
  if (mapSettings.tiles) {
    tiles(map);
  } else {
    await offline(map, container);
  }
  return map;
}

function tiles(map) {
  L.tileLayer(mapSettings.tiles, { maxZoom: 19, crossOrigin: false }).addTo(map);
  // The configured attribution is the operator's text: it goes in as text, never as HTML.
  const Attribution = L.Control.extend({
    onAdd: () => el("div", { class: "leaflet-control-attribution leaflet-control tile-attribution" }, mapSettings.tilesAttribution),
  });
  new Attribution({ position: "bottomright" }).addTo(map);
}

async function offline(map, container) {
  map.createPane("basemap");
  map.getPane("basemap").style.zIndex = 250;
  map.getPane("basemap").style.pointerEvents = "none";

  // The streets are awaited; buildings and labels follow when they come (the map is usable
  // without them, and the page's data need not wait for them).
  const buildingsLoading = loadBasemapFile("helsinki-buildings.geojson");
  const streetsData = await loadBasemapFile("helsinki-streets.geojson");
  // The world's outlines are fetched the first time the map is zoomed out far enough to show them.
  const countries = L.geoJSON(null, {
    pane: "basemap",
    interactive: false,
    style: { color: "#8c8374", weight: 0.8, fillColor: "#f4f1ea", fillOpacity: 1 },
  });
  let countriesLoading = null;
  const loadCountries = () => {
    countriesLoading =
      countriesLoading ||
      loadBasemapFile("countries.geojson")
        .then((data) => countries.addData(data))
        .catch(() => {
          countriesLoading = null; // try again on the next zoom
        });
    return countriesLoading;
  };
  const named = streetsData.features.filter((f) => f.properties.name);
  const buildings = L.geoJSON(null, {
    pane: "basemap",
    interactive: false,
    style: { color: "#c4b9a6", weight: 0.8, fillColor: "#e3dccf", fillOpacity: 1 },
  });
  const footways = L.geoJSON(
    { type: "FeatureCollection", features: streetsData.features.filter((f) => !f.properties.name) },
    { pane: "basemap", interactive: false, style: { color: "#b9b2a5", weight: 1.2, opacity: 0.9 } },
  );
  const streets = L.geoJSON(
    { type: "FeatureCollection", features: named },
    { pane: "basemap", interactive: false, style: { color: "#9a9081", weight: 3, opacity: 1 } },
  );
  const streetCores = L.geoJSON(
    { type: "FeatureCollection", features: named },
    { pane: "basemap", interactive: false, style: { color: "#ffffff", weight: 1.6, opacity: 1 } },
  );

  const update = () => {
    const z = map.getZoom();
    // Close in, a street is as wide on screen as it is in the city, near enough.
    const casing = z >= 18.5 ? 11 : z >= 17.5 ? 7 : z >= 16.5 ? 4.5 : 3;
    streets.setStyle({ weight: casing });
    streetCores.setStyle({ weight: casing - 1.6 * (z >= 16.5 ? 1.4 : 1) });
    if (z <= COUNTRIES_UNTIL_ZOOM) loadCountries();
    container.classList.toggle("map-far", z <= COUNTRIES_UNTIL_ZOOM);
    for (const [layer, show] of [
      [countries, z <= COUNTRIES_UNTIL_ZOOM],
      [buildings, z >= BUILDINGS_FROM_ZOOM],
      [footways, z >= STREETS_FROM_ZOOM],
      [streets, z >= STREETS_FROM_ZOOM],
      [streetCores, z >= STREETS_FROM_ZOOM],
    ]) {
      if (show && !map.hasLayer(layer)) layer.addTo(map);
      if (!show && map.hasLayer(layer)) map.removeLayer(layer);
    }
  };
  map.on("zoomend", update);
  update();
  // The attribution must be there whatever the zoom: OSM's licence asks for it on the map.
  map.attributionControl.addAttribution(
    'Streets, buildings, places © <a href="https://www.openstreetmap.org/copyright">OpenStreetMap contributors</a>, ODbL · Countries: Natural Earth',
  );

  const labels = labelLayer(map);
  labels.streets(named);
  buildingsLoading
    .then((data) => {
      buildings.addData(data);
      labels.buildings(data.features.filter((f) => f.properties.name));
    })
    .catch(() => {}); // the streets are the map; buildings are a help
  loadBasemapFile("helsinki-places.json")
    .then((data) => labels.places(data.places))
    .catch(() => {}); // labels are a help, not a need
}

// ---- labels ------------------------------------------------------------------------------

/**
 * Text on the map that never overlaps: on every move, the labels that fit are placed greedily,
 * most important first. A street's name runs along its longest stretch in view. Each label is
 * kept as a chain of small circles along its axis, which is what overlaps are tested on (a box
 * around a slanted name would block too much).
 */
function labelLayer(map) {
  const pane = map.createPane("labels");
  pane.style.zIndex = 260;
  pane.style.pointerEvents = "none";
  pane.setAttribute("aria-hidden", "true"); // the same names are in the search and the lists
  const fixed = []; // {text, kind, latlng}
  let streetFeatures = [];

  const placeLabel = (text, kind, point, angle, placed, within) => {
    const half = (text.length * CHAR_PX) / 2 + 4;
    const r = LABEL_PX / 2 + 1;
    const cos = Math.cos((angle * Math.PI) / 180);
    const sin = Math.sin((angle * Math.PI) / 180);
    const circles = [];
    for (let d = -half + r; d <= half - r + 0.01; d += r) circles.push([point.x + d * cos, point.y + d * sin]);
    if (!circles.length) circles.push([point.x, point.y]);
    // The whole label on screen: a name cut by the map's edge is no help.
    if (!circles.every(([x, y]) => within.contains([x, y]))) return false;
    for (const other of placed) {
      for (const [x, y] of circles) {
        for (const [ox, oy] of other) {
          if ((x - ox) ** 2 + (y - oy) ** 2 < (2 * r) ** 2) return false;
        }
      }
    }
    placed.push(circles);
    const node = el("div", { class: `map-label map-label-${kind}` }, text);
    node.style.transform = `translate(${point.x}px, ${point.y}px) rotate(${angle}deg) translate(-50%, -50%)`;
    pane.append(node);
    return true;
  };

  // The longest run of a street inside the view, on screen, and a point and angle at its middle.
  const streetAnchor = (feature, view) => {
    let best = null;
    for (const line of feature.geometry.coordinates) {
      let run = [];
      const flush = () => {
        if (run.length > 1) {
          let length = 0;
          for (let i = 1; i < run.length; i += 1) length += run[i].distanceTo(run[i - 1]);
          if (!best || length > best.length) best = { run, length };
        }
        run = [];
      };
      for (const [lon, lat] of line) {
        const p = map.latLngToLayerPoint([lat, lon]);
        if (view.contains(p)) run.push(p);
        else flush();
      }
      flush();
    }
    if (!best) return null;
    const along = (target) => {
      let walked = 0;
      for (let i = 1; i < best.run.length; i += 1) {
        const step = best.run[i].distanceTo(best.run[i - 1]);
        if (walked + step >= target) {
          const t = step ? (target - walked) / step : 0;
          return best.run[i - 1].add(best.run[i].subtract(best.run[i - 1]).multiplyBy(t));
        }
        walked += step;
      }
      return best.run[best.run.length - 1];
    };
    const textPx = feature.properties.name.length * CHAR_PX + 16;
    if (best.length < textPx) return null;
    const middle = along(best.length / 2);
    const a = along(best.length / 2 - textPx / 2);
    const b = along(best.length / 2 + textPx / 2);
    let angle = (Math.atan2(b.y - a.y, b.x - a.x) * 180) / Math.PI;
    if (angle > 90) angle -= 180;
    if (angle < -90) angle += 180;
    return { point: middle, angle, length: best.length };
  };

  const draw = () => {
    pane.replaceChildren();
    const z = map.getZoom();
    const size = map.getSize();
    const topLeft = map.containerPointToLayerPoint([0, 0]);
    const inner = L.bounds(topLeft.add([20, 12]), topLeft.add(size).subtract([20, 12]));
    const shows = (kind) => z >= LABELS[kind].from && z <= (LABELS[kind].until ?? 99);
    const candidates = [];
    for (const label of fixed) {
      if (!shows(label.kind)) continue;
      const point = map.latLngToLayerPoint(label.latlng);
      if (!inner.contains(point)) continue;
      candidates.push({ text: label.text, kind: label.kind, point, angle: 0, priority: LABELS[label.kind].priority });
    }
    if (shows("street")) {
      for (const feature of streetFeatures) {
        const anchor = streetAnchor(feature, inner);
        if (anchor) {
          candidates.push({
            text: feature.properties.name,
            kind: "street",
            point: anchor.point,
            angle: anchor.angle,
            priority: LABELS.street.priority + Math.min(anchor.length, 900) / 10,
          });
        }
      }
    }
    candidates.sort((x, y) => y.priority - x.priority || x.text.localeCompare(y.text));
    const placed = [];
    for (const c of candidates) placeLabel(c.text, c.kind, c.point, c.angle, placed, inner);
    pane.dataset.labels = String(pane.childElementCount);
  };
  map.on("zoomstart", () => {
    pane.style.visibility = "hidden";
  });
  map.on("zoomend moveend resize", () => {
    pane.style.visibility = "";
    draw();
  });

  return {
    streets(features) {
      streetFeatures = features;
      draw();
    },
    places(places) {
      for (const p of places) {
        if (!LABELS[p.kind]) continue;
        fixed.push({ text: p.name, kind: p.kind, latlng: L.latLng(p.at[1], p.at[0]) });
      }
      draw();
    },
    buildings(features) {
      for (const f of features) {
        fixed.push({ text: f.properties.name, kind: "building", latlng: L.geoJSON(f).getBounds().getCenter() });
      }
      draw();
    },
  };
}
