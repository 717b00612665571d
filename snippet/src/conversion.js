// ctc.js, for order confirmation pages only, beside ct.js and before it:
//   <script type="application/json" data-ct-conversion>
//     {"order": "A-1042", "value": 23.50, "currency": "GBP", "items": ["emma", "dune"]}
//   </script>
//   <script src="https://ct.example/ctc.js"></script>
//   <script src="https://ct.example/ct.js" async></script>
// It puts the order in ct.js's outbox with the recommended clicks ct.js remembered (the
// collector picks the last one within its attribution window); ct.js sends it (its replay, half a second after load) and keeps it until a
// collector has acknowledged it. Each load of the page sends the order again: the collector
// counts an order once. With data-gpc on its tag (as on ct.js's), it records nothing for a
// visitor who sends Global Privacy Control.
try {
  if (navigator.globalPrivacyControl && document.currentScript.hasAttribute('data-gpc')) throw 0;
  const now = Date.now();
  const state = JSON.parse(localStorage.getItem('clickthru')) || { q: [], d: {} };
  state.q.push({
    ...JSON.parse(document.querySelector('script[data-ct-conversion]').textContent),
    id: now.toString(36) + '-' + crypto.getRandomValues(new Uint32Array(2)).join('-'),
    kind: 'conversion',
    ts: now,
    page: location.href,
    clicks: (state.c || []).map(([id, token, ts]) => ({ id, token, ts }))
  });
  localStorage.setItem('clickthru', JSON.stringify(state));
} catch {
  // no order on the page, or no localStorage: the page works as if clickthru did not exist
}
