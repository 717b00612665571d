// clickthru: reports clicks on and views of recommended links, and loses none of them,
// without ever touching the visitor's navigation. No unload or beforeunload listener: they
// would keep pages out of the back-forward cache.
import { configure, guard, optedOut } from './config.js';
import { onClick } from './clicks.js';
import { replay } from './events.js';
import { watchViews } from './views.js';

try {
  configure(document.currentScript);
  document.addEventListener('click', guard(onClick), true);
  document.addEventListener('auxclick', guard(onClick), true);
  if (!optedOut) {
    // Hidden is the last moment a page is sure to have: leaving, closing, switching tabs.
    document.addEventListener(
      'visibilitychange',
      guard(() => document.hidden && replay())
    );
    addEventListener('online', guard(replay));
    // Half a second after load: a page left sooner would not live to see what a replay learns.
    setTimeout(guard(replay), 500);
    watchViews(); // last: without IntersectionObserver, clicks are still reported
  }
} catch {
  // a browser too old or too locked down: the page works as if clickthru did not exist
}
