// Venues in words for people: categories as words, not OpenStreetMap tags ("amenity=cafe",
// "shop:books", "fast_food" read "Café", "Bookshop", "Fast food"), and a venue's label with its
// address, which tells venues of the same name apart. Every page that shows or chooses venues
// uses these; api/dashboard/views.py's `venue_label` is the server's twin for <select>s.

const AMENITIES = {
  cafe: "Café",
  restaurant: "Restaurant",
  fast_food: "Fast food",
  pub: "Pub",
  bar: "Bar",
  ice_cream: "Ice cream",
  biergarten: "Beer garden",
  food_court: "Food court",
  nightclub: "Nightclub",
  marketplace: "Market",
};

// Shops: the value's words, unless a better name is known. "yes" is a shop of no stated kind.
const SHOPS = {
  yes: "Shop",
  books: "Bookshop",
  clothes: "Clothes shop",
  shoes: "Shoe shop",
  hairdresser: "Hairdresser",
  beauty: "Beauty salon",
  beauty_salon: "Beauty salon",
  jewelry: "Jeweller",
  optician: "Optician",
  furniture: "Furniture shop",
  kiosk: "Kiosk",
  convenience: "Convenience store",
  art: "Art shop",
  sports: "Sports shop",
  alcohol: "Off-licence (Alko)",
  interior_decoration: "Interior decoration",
  supermarket: "Supermarket",
  gift: "Gift shop",
  mobile_phone: "Mobile phone shop",
  travel_agency: "Travel agency",
  deli: "Delicatessen",
  mall: "Shopping centre",
  antiques: "Antiques",
  toys: "Toy shop",
  cosmetics: "Cosmetics",
  outdoor: "Outdoor shop",
  bicycle: "Bicycle shop",
  variety_store: "Variety store",
  musical_instrument: "Musical instruments",
  baby_goods: "Baby goods",
  electronics: "Electronics",
  funeral_directors: "Funeral directors",
  confectionery: "Sweet shop",
  bakery: "Bakery",
  florist: "Florist",
  massage: "Massage",
  ticket: "Ticket office",
  hardware: "Hardware store",
  doityourself: "DIY store",
  hifi: "Hi-fi shop",
  computer: "Computer shop",
  music: "Music shop",
  second_hand: "Second-hand shop",
  pet: "Pet shop",
  laundry: "Laundry",
  tailor: "Tailor",
  photo: "Photo shop",
  health_food: "Health food shop",
  department_store: "Department store",
  records: "Record shop",
  nails: "Nail salon",
  butcher: "Butcher",
  pawnbroker: "Pawnbroker",
  grocery: "Grocery",
  car_repair: "Car repair",
  tattoo: "Tattoo studio",
  locksmith: "Locksmith",
  tea: "Tea shop",
};

const sentence = (text) => {
  const words = text.replace(/[_-]+/g, " ").replace(/\s+/g, " ").trim().toLowerCase();
  return words ? words[0].toUpperCase() + words.slice(1) : "";
};

/**
 * A category for people. OSM forms ("amenity=cafe", "shop=books", "shop:books", "cafe") become
 * words; anything else (a merchant's own "Coffee bar") is shown as typed. Null stays null.
 */
export function categoryWords(category) {
  if (category === null || category === undefined) return null;
  const raw = String(category).trim();
  if (!raw) return null;
  const match = /^(amenity|shop|leisure|tourism|craft)\s*[=:]\s*(.+)$/i.exec(raw);
  if (match) {
    const [, key, value] = match;
    const v = value.trim().toLowerCase();
    if (key.toLowerCase() === "amenity") return AMENITIES[v] || sentence(v);
    if (key.toLowerCase() === "shop") return SHOPS[v] || (v.split(";")[0] ? `${sentence(v.split(";")[0])} shop` : "Shop");
    return sentence(v);
  }
  if (/^[a-z0-9_]+$/.test(raw)) return AMENITIES[raw] || SHOPS[raw] || sentence(raw);
  return raw;
}

/** The words every category of the dashboard offers, for a datalist. */
export const CATEGORY_CHOICES = [...new Set([...Object.values(AMENITIES), ...Object.values(SHOPS)])].sort((a, b) => a.localeCompare(b));

/**
 * The category to store for what the form shows: unchanged words keep the venue's own value
 * ("shop:books" shown as "Bookshop" stays "shop:books"); anything typed is kept as typed.
 */
export function categoryToSave(shown, original) {
  const text = shown.trim();
  if (!text) return null;
  if (original && categoryWords(original) === text) return original;
  return text;
}

/** "Name — Address" when the venue has an address; the name alone otherwise. */
export function venueLabel(venue) {
  return venue.address ? `${venue.name} — ${venue.address}` : venue.name;
}

/**
 * Each venue's label by id, read from a page's venue <select> (whose options the server wrote
 * with `venue_label`): lists and tables show "Name — Address" for rows that carry only a venue's
 * id and name. A venue not in the select (deleted since) keeps the row's name: `labelOf(id, name)`.
 */
export function venueLabels(select) {
  const labels = new Map([...(select?.options ?? [])].filter((o) => o.value).map((o) => [o.value, o.textContent]));
  return (id, name) => labels.get(id) ?? name;
}

/**
 * The detail that tells a venue from others of the same name in `all`: its address, else its
 * position (a venue with no address and a namesake still needs telling apart).
 */
export function venueDetail(venue, all = []) {
  if (venue.address) return venue.address;
  const namesakes = all.filter((v) => v.name === venue.name).length;
  if (namesakes < 2) return "";
  const [lon, lat] = venue.location.coordinates;
  return `no address; at ${lat.toFixed(4)}, ${lon.toFixed(4)}`;
}
