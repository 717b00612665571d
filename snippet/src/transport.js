// Deliver a batch of events to the first collector that takes it, and keep what living pages
// saw of each collector. An answer no living page saw is no evidence either way: the page
// that clicked is usually gone before its collector answers.
import { endpoints } from './config.js';
import { load, save } from './outbox.js';

const TIMEOUT = 5e3; // ms: a request a living page waits on longer than this has failed

// state.d[endpoint] = [failures in a row seen by living pages, probed until]. A collector
// that failed is tried after the others, and only by a replay from a page in view (one that
// just loaded, or lived on; not one leaving, which would never see the answer): one request at
// a time, shared by the site's tabs, so a hanging or unreachable host cannot take the
// browser's six connections to it. A click only writes the outbox then.
// Calls done(1) once a collector acknowledged the batch, done(0) when a living page saw every
// collector it tried fail, done(-1) when the page left first. Returns false when the batch did
// not leave.
export const deliver = (batch, done, probe, tried = []) => {
  const state = load();
  const now = Date.now();
  const failed = (endpoint) => state.d[endpoint] || [0, 0];
  const untried = endpoints.filter((endpoint) => !tried.includes(endpoint));
  const endpoint =
    untried.find((e) => !failed(e)[0]) ||
    (probe && !document.hidden && untried.find((e) => failed(e)[1] < now));
  if (!endpoint) return tried[0] && done(0);
  if (failed(endpoint)[0]) {
    state.d[endpoint] = [failed(endpoint)[0], now + 2 * TIMEOUT];
    save(state);
  }
  tried.push(endpoint);
  post(endpoint, batch, (status) => {
    if (!status) return done(-1); // the page is leaving: the answer is unknown
    const state = load();
    // A 4xx other than 408 and 429 is an answer: the collector has recorded why it refused.
    if (status > 199 && status < 500 && status != 408 && status != 429) {
      delete state.d[endpoint];
      save(state);
      done(1);
    } else {
      state.d[endpoint] = [failed(endpoint)[0] + 1, 0];
      save(state);
      deliver(batch, done, probe, tried);
    }
  });
  return 1;
};

// A keepalive fetch outlives the page and tells the status, so it comes first. A beacon
// outlives the page but tells nothing. An image may be cancelled by the navigation; the
// outbox keeps its event until the image has loaded. Answers 0 when a request fails as its
// page unloads (Chromium ends the page's side of a keepalive fetch, not the request).
const post = (endpoint, batch, answer) => {
  const url = endpoint + '/e';
  try {
    // Without AbortSignal.timeout (before 2022), a beacon.
    const signal = AbortSignal.timeout(TIMEOUT);
    // No credentials: no cookies of the shop's go along, and Chromium keeps the requests in
    // a pool of connections apart from the shop's own pages, so a collector hanging behind
    // the shop's path cannot hold the connections its navigations need.
    fetch(url, { method: 'POST', body: JSON.stringify(batch), keepalive: true, credentials: 'omit', signal }).then(
      // Only a collector's answer is one (it answers JSON): a proxy's or a CDN's error page,
      // or a shop's catch-all page, tells nothing of the events.
      (response) => answer(/json/.test(response.headers.get('content-type')) ? response.status : -1),
      () => answer(signal.aborted || !document.hidden ? -1 : 0)
    );
  } catch {
    // No keepalive fetch in this browser. A queued beacon is as far as it can tell.
    if (navigator.sendBeacon(url, JSON.stringify(batch))) answer(202);
    else if (batch[1]) answer(-1);
    else {
      const image = new Image();
      image.onload = () => answer(200);
      image.onerror = () => answer(-1);
      image.src = url + '?' + new URLSearchParams(batch[0]); // GET /e: blocklists' image rules miss it
    }
  }
};
