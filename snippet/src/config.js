// What the embedding <script> tag asks for:
//   data-endpoints="https://ct-a.example,https://ct-b.example"  collectors, tried in order;
//                  without it, the collector that served this file
//   data-debug     log what the snippet does to the console
//   data-gpc       honour Global Privacy Control: record nothing for visitors who send it

export let endpoints;
export let optedOut;
let debug;

export const configure = (script) => {
  const option = (name) => script.getAttribute('data-' + name);
  endpoints = (option('endpoints') || new URL(script.src).origin)
    .split(',')
    .map((endpoint) => endpoint.trim().replace(/\/+$/, ''));
  optedOut = option('gpc') != null && navigator.globalPrivacyControl;
  debug = option('debug') != null;
};

export const log = (what, detail) => debug && console.debug('clickthru', what, detail);

// Every callback the page's events reach goes through here: nothing may throw into the page.
export const guard =
  (callback) =>
  (...args) => {
    try {
      callback(...args);
    } catch (error) {
      log('error', error);
    }
  };
