// Record an event in the outbox, send it, replay what is still waiting.
import { guard, log } from './config.js';
import { load, save, update } from './outbox.js';
import { deliver } from './transport.js';

// ms an event sent without a seen answer is left alone: by the site's other tabs, whose
// request may still be out, and by this page, which lets it ride along with its own requests
// rather than send it alone.
const LEASE = 5e3;
const BATCH_CHARACTERS = 8e3; // small against the 64 KiB all keepalive requests share

const flying = {}; // ids in this page's requests that have no answer yet
let replaying;
let retryIn = LEASE;

// Time first, so ids sort roughly by time; 64 random bits make them unique.
const newId = () => Date.now().toString(36) + '-' + crypto.getRandomValues(new Uint32Array(2)).join('-');

export const record = (kind, link) => {
  const event = {
    id: newId(),
    kind,
    token: link.getAttribute('data-ct'),
    ts: Date.now(),
    page: location.href,
    dest: link.href
  };
  const state = load();
  state.q.push(event);
  save(state);
  log(kind, event);
  return event;
};

// Events waiting to go along with `first`: never sent, or sent with no answer seen and out
// of their lease. `rides` caps how often an event already sent may go again this way.
const waiting = (first, rides) => {
  const now = Date.now();
  let characters = 0;
  return first.concat(
    load().q.filter(
      (event) =>
        !flying[event.id] &&
        !first.some((own) => own.id == event.id) &&
        (!event.s || (now - event.s > LEASE && event.n < rides)) &&
        (characters += JSON.stringify(event).length) < BATCH_CHARACTERS
    )
  );
};

// Send the batch; forget it once acknowledged, or free it for the next request once a living
// page saw every collector fail. Returns false when it could not leave (see deliver).
const send = (batch, then, probe) => {
  const ids = batch.map((event) => event.id);
  for (const id of ids) flying[id] = 1;
  const sent = deliver(batch, (acknowledged) => {
    for (const id of ids) delete flying[id];
    update(ids, (event) => {
      event.s = 0;
      return !acknowledged; // acknowledged events leave the outbox
    });
    then && then(acknowledged);
  }, probe);
  if (!sent) for (const id of ids) delete flying[id];
  const now = Date.now();
  update(ids, (event) => {
    if (sent) event.s = now;
    event.n = ~~event.n + !!sent;
    return true;
  });
  return sent;
};

// A click leaves at once in a request of its own, whatever else is out; what else waits
// rides along with it (once, for events already sent).
export const push = (event) => send(waiting([event], 2));

// Sends what waits, one bounded batch at a time: at once what was never sent (the rest rides
// along); what was sent with no answer seen, alone once this page has lived out a lease.
export const replay = (all) => {
  if (replaying) return;
  const batch = waiting([], 1e9);
  if (batch.some((event) => all || !event.s)) {
    replaying = 1;
    const sent = send(batch, (acknowledged) => {
      replaying = 0;
      // The next batch; or, after a failure, another try while this page lives, each
      // one waiting twice as long as the last (up to 5 minutes).
      retryIn = acknowledged ? LEASE : Math.min(retryIn * 2, 3e5);
      acknowledged ? replay(1) : setTimeout(guard(replay), retryIn, 1);
    }, 1);
    if (sent) return;
    replaying = 0;
  }
  if (load().q.some((event) => !flying[event.id])) setTimeout(guard(replay), LEASE, 1);
};
