// Every event waits in localStorage until a collector has acknowledged it. The state is
// {q: [events], d: {endpoint: [down until, failures in a row]}}, shared by the site's tabs.
const STORAGE_KEY = 'clickthru';
const MAX_EVENTS = 200;
const MAX_CHARACTERS = 6e4;
const MAX_AGE = 5 * 864e5; // 5 days: a token lives 7, a replay must arrive before it expires

// Where localStorage is missing, full or throwing, the outbox lives as long as the page.
let memory = { q: [], d: {} };
let persistent = 1;

export const load = () => {
  try {
    const state = persistent && JSON.parse(localStorage.getItem(STORAGE_KEY));
    if (state && state.q) return state;
  } catch {}
  return memory;
};

// The caps drop the oldest events first.
export const save = (state) => {
  const now = Date.now();
  let text;
  state.q = state.q.filter((event) => now - event.ts < MAX_AGE);
  while ((text = JSON.stringify(state)).length > MAX_CHARACTERS || state.q.length > MAX_EVENTS) {
    state.q.shift();
  }
  memory = state;
  try {
    localStorage.setItem(STORAGE_KEY, text);
    persistent = 1;
  } catch {
    persistent = 0;
  }
};

// Changes the stored events with these ids; those for which `change` returns false leave.
// Read again first: another tab may have changed the rest meanwhile.
export const update = (ids, change) => {
  const state = load();
  state.q = state.q.filter((event) => !ids.includes(event.id) || change(event));
  save(state);
};
