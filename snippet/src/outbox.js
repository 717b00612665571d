// Every event waits in localStorage until a collector has acknowledged it. The state is
// {q: [events], d: {endpoint: [down until, failures in a row]}}, shared by the site's tabs.
const STORAGE_KEY = 'clickthru';
const MAX_EVENTS = 200;
const MAX_CHARACTERS = 6e4;
const MAX_AGE = 5 * 864e5; // 5 days: a token lives 7, a replay must arrive before it expires

// Where localStorage is missing, full or throwing, the outbox lives as long as the page.
let memory = { q: [], d: {} };
let persistent = 1;

// Whatever reads the outbox sees it within its caps, which drop the oldest events first.
export const load = () => {
  let state = memory;
  try {
    const stored = persistent && JSON.parse(localStorage.getItem(STORAGE_KEY));
    if (stored && stored.q) state = stored;
  } catch {}
  const now = Date.now();
  state.q = state.q.filter((event) => now - event.ts < MAX_AGE);
  while (JSON.stringify(state).length > MAX_CHARACTERS || state.q.length > MAX_EVENTS) {
    state.q.shift();
  }
  return state;
};

export const save = (state) => {
  memory = state;
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(state));
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
