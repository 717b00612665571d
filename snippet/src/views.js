// A recommended link at least half visible for a second is one view, counted once per link
// per page view. Views wait in the outbox until the page is hidden or enough have gathered.
import { guard } from './config.js';
import { record, replay } from './events.js';

const VIEW_RATIO = 0.5;
const VIEW_MS = 1e3;
const VIEWS_PER_BATCH = 20;

export const watchViews = () => {
  const viewed = new WeakSet();
  const timers = new WeakMap();
  let waiting = 0;

  const seen = (link) => {
    visibility.unobserve(link);
    viewed.add(link);
    record('view', link);
    if (++waiting >= VIEWS_PER_BATCH) {
      waiting = 0;
      replay();
    }
  };

  const visibility = new IntersectionObserver(
    guard((entries) => {
      for (const { target: link, intersectionRatio } of entries) {
        clearTimeout(timers.get(link));
        if (intersectionRatio >= VIEW_RATIO) timers.set(link, setTimeout(guard(seen), VIEW_MS, link));
      }
    }),
    { threshold: VIEW_RATIO }
  );

  const scan = () => {
    for (const link of document.querySelectorAll('a[data-ct]')) {
      viewed.has(link) || visibility.observe(link);
    }
  };

  // Links added after load are watched too (mutations arrive batched, once per task).
  new MutationObserver(guard(scan)).observe(document, { childList: true, subtree: true });
  scan();
};
