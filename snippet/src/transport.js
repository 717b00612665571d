// Deliver a batch of events to the first collector that takes it.
import { endpoints, log } from './config.js';
import { load, save } from './outbox.js';

const TIMEOUT = 5e3; // ms: a request a living page waits on longer than this has failed

// A failed collector is left alone for 1 s, 2 s, 4 s... up to 4 minutes.
const markDown = (endpoint, failures) => {
  const state = load();
  state.d[endpoint] = [Date.now() + (500 << Math.min(failures, 9)), failures];
  save(state);
};

// Collectors that failed are tried last, the one back soonest first; the others keep
// the order they were listed in.
const ordered = ({ d: down }) => {
  const now = Date.now();
  const until = (endpoint) => (down[endpoint] && down[endpoint][0] > now ? down[endpoint][0] : 0);
  return endpoints.slice().sort((a, b) => until(a) - until(b));
};

// Calls done(true) once a collector has acknowledged the batch, done(false) when none did.
// A 4xx other than 408 and 429 is an answer too: the collector has recorded why it refused.
export const deliver = (batch, done, remaining = ordered(load())) => {
  const endpoint = remaining.shift();
  if (!endpoint) return done(false);
  // Until it answers, a request counts as failed: when the page leaves first, the next
  // page still knows to try another collector before one that may be hanging.
  const failures = (load().d[endpoint] || [0, 0])[1] + 1;
  markDown(endpoint, failures);
  post(endpoint, batch, (status) => {
    log(endpoint, status);
    if (status > 199 && status < 500 && status != 408 && status != 429) {
      const state = load();
      delete state.d[endpoint];
      save(state);
      done(true);
    } else {
      markDown(endpoint, failures); // the wait counts from the failure
      deliver(batch, done, remaining);
    }
  });
};

// A keepalive fetch outlives the page and tells the status, so it comes first. A beacon
// outlives the page but tells nothing. An image may be cancelled by the navigation; the
// outbox keeps its event until the image has loaded.
const post = (endpoint, batch, answer) => {
  const url = endpoint + '/e';
  try {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), TIMEOUT);
    fetch(url, { method: 'POST', body: JSON.stringify(batch), keepalive: true, signal: abort.signal })
      .then((response) => answer(response.status), () => answer(-1));
  } catch {
    // No keepalive fetch in this browser. A queued beacon is as far as it can tell.
    if (navigator.sendBeacon(url, JSON.stringify(batch))) answer(202);
    else if (batch[1]) answer(-1);
    else {
      const image = new Image();
      image.onload = () => answer(200);
      image.onerror = () => answer(-1);
      image.src = endpoint + '/p.gif?' + new URLSearchParams(batch[0]);
    }
  }
};
