// What the embedding <script> tag asks for:
//   data-endpoints="https://ct-a.example,https://ct-b.example"  collectors, tried in order;
//                  "/_ct/" is one under the shop's own site (first-party mode); without it,
//                  where this file was served from (a collector, or the shop's /_ct/)
//   data-gpc       honour Global Privacy Control: record nothing for visitors who send it

export let endpoints;
export let optedOut;

export const configure = (script) => {
  const option = (name) => script.getAttribute('data-' + name);
  endpoints = (option('endpoints') || script.src.replace(/[^/]*$/, ''))
    .split(',')
    .map((endpoint) => endpoint.trim().replace(/\/+$/, ''));
  optedOut = option('gpc') != null && navigator.globalPrivacyControl;
};

// Every callback the page's events reach goes through here: nothing may throw into the page.
export const guard =
  (callback) =>
  (...args) => {
    try {
      callback(...args);
    } catch {}
  };
