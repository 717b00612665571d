// A click on a recommended link (<a data-ct="TOKEN">): the left button, with or without
// modifier keys, and Enter on a focused link (both fire click); the middle button
// (auxclick). Navigation is never touched: no preventDefault, no change to href or target.
import { guard, optedOut } from './config.js';
import { push, record } from './events.js';

export const onClick = (event) => {
  const link = event.target.closest('a[data-ct]');
  if (!link || (event.type == 'auxclick' && event.button != 1)) return;
  // The snippet reports this click; the browser's <a ping> would count it a second time.
  link.removeAttribute('ping');
  if (optedOut) return;
  // Sent once the handler has returned and navigation has begun: starting a request costs
  // milliseconds the visitor would wait. If the page is hidden first, that sends it.
  record('click', link);
  setTimeout(guard(push));
};
