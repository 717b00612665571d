// Record an event in the outbox, send it, replay what is still waiting.
import { guard } from './config.js';
import { load, save, update } from './outbox.js';
import { deliver } from './transport.js';

// ms an event sent without a seen answer is left alone, by this page and the site's other tabs,
// whose request may still be out; longer than a living page waits for an answer (transport.js).
// What pages before this one sent is free at once: rather than alone, it rides along with the
// next request this page makes anyway.
const LEASE = 6e3;
const BORN = Date.now();
const ALONE = 2e3; // ms a page lets what waits wait for a request to ride along with
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
  // The last recommended clicks, for the order confirmation page's conversion (ctc.js).
  kind == 'click' && (state.c = [...(state.c || []), [event.id, event.token, event.ts]].slice(-9));
  save(state);
  return event;
};

// What a request carries, newest first (a click is the newest): the events never sent, and
// those sent with no answer seen and free, if sent fewer than `sends` times.
const waiting = (sends) => {
  const now = Date.now();
  let characters = 0;
  return [...load().q]
    .reverse()
    .filter(
      (event) =>
        (!event.s || ((event.s < BORN || now - event.s > LEASE) && event.n < sends)) &&
        (characters += JSON.stringify(event).length) < BATCH_CHARACTERS
    );
};

// Send the batch; forget it once acknowledged, or free it for the next request once a living
// page saw every collector fail. Returns false when it could not leave (see deliver).
const send = (batch, then, probe) => {
  const ids = batch.map((event) => event.id);
  const now = Date.now();
  const sent = deliver(
    batch,
    (answer) => {
      answer < 0 ||
        update(ids, (event) => {
          event.s = 0;
          return !answer; // acknowledged events leave the outbox
        });
      then && then(answer > 0);
    },
    probe
  );
  sent &&
    update(ids, (event) => {
      event.s = now;
      event.n = -~event.n;
      return true;
    });
  return sent;
};

// A click leaves at once in a request of its own, whatever else is out; what else waits
// rides along with it (once more, for an event already sent).
export const push = () => {
  const batch = waiting(2);
  batch[0] && send(batch);
};

// Sends what waits, one bounded batch at a time: at once what was never sent (the rest rides
// along); what was sent with no answer seen, alone when no request of this page took it along.
export const replay = (all) => {
  if (replaying) return;
  const batch = waiting(1e9);
  if (batch.some((event) => all || !event.s)) {
    replaying = 1;
    const sent = send(
      batch,
      (acknowledged) => {
        replaying = 0;
        // The next batch; or, after a failure, another try while this page lives, each
        // one waiting twice as long as the last (up to 5 minutes).
        retryIn = acknowledged ? LEASE : Math.min(retryIn * 2, 3e5);
        acknowledged ? replay(1) : setTimeout(guard(replay), retryIn, 1);
      },
      1
    );
    if (sent) return;
    replaying = 0;
  }
  load().q[0] && setTimeout(guard(replay), ALONE, 1);
};
