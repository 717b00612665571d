/* clickthru snippet: reports clicks on recommended links (<a data-ct="TOKEN">).
 * Minimal version: sendBeacon to the first endpoint. Never blocks or alters navigation. */
(function () {
  try {
    var script = document.currentScript;
    var listed = script && script.getAttribute('data-endpoints');
    var base = (listed ? listed.split(',')[0] : new URL(script.src).origin).trim();
    var endpoint = base.replace(/\/+$/, '') + '/e';

    var newId = function () {
      var bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      return Array.prototype.map.call(bytes, function (b) {
        return (b + 256).toString(16).slice(1);
      }).join('');
    };

    var onClick = function (event) {
      try {
        if (event.type === 'auxclick' && event.button !== 1) return;
        var link = event.target && event.target.closest && event.target.closest('a[data-ct]');
        if (!link) return;
        navigator.sendBeacon(endpoint, JSON.stringify({
          id: newId(),
          kind: 'click',
          token: link.getAttribute('data-ct'),
          ts: Date.now(),
          page: location.href,
          dest: link.href,
          via: 'beacon'
        }));
      } catch (ignored) { /* never throw into the host page */ }
    };

    document.addEventListener('click', onClick, true);
    document.addEventListener('auxclick', onClick, true);
  } catch (ignored) { /* an old or locked-down browser: do nothing */ }
})();
