// Record an event in the outbox, send it, replay what is still waiting.
import { guard, log } from './config.js';
import { load, save, update } from './outbox.js';
import { deliver } from './transport.js';

const LEASE = 6e3; // ms an event being sent is left alone by replays, in this tab and others
const BATCH_CHARACTERS = 8e3; // small against the 64 KiB all keepalive requests share

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

// Lease the batch, send it, then forget it (acknowledged) or free it for the next replay.
export const send = (batch, then) => {
  const ids = batch.map((event) => event.id);
  const now = Date.now();
  update(ids, (event) => {
    event.s = now;
    return true;
  });
  deliver(batch, (acknowledged) => {
    update(ids, (event) => {
      event.s = 0;
      return !acknowledged; // acknowledged events leave the outbox
    });
    then && then(acknowledged);
  });
};

// Sends what waits, one bounded batch at a time; comes back when the leases run out.
export const replay = () => {
  if (replaying) return;
  const now = Date.now();
  const batch = [];
  let characters = 0;
  let leased;
  for (const event of load().q) {
    if (now - event.s < LEASE) leased = 1;
    else if ((characters += JSON.stringify(event).length) < BATCH_CHARACTERS) batch.push(event);
  }
  if (batch.length) {
    replaying = 1;
    send(batch, (acknowledged) => {
      replaying = 0;
      // The next batch; or, after a failure, another try while this page lives, each
      // one waiting twice as long as the last (up to 5 minutes).
      retryIn = acknowledged ? LEASE : Math.min(retryIn * 2, 3e5);
      acknowledged ? replay() : setTimeout(guard(replay), retryIn);
    });
  } else if (leased) setTimeout(guard(replay), LEASE);
};
