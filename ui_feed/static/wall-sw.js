// Service worker of the wall page: keeps the page itself loadable while the
// API that serves it is down, so a reload then shows the last figures
// (wall.js keeps them in sessionStorage) and a "reconnecting" line instead
// of the browser's error page. Network first: whatever the API serves wins,
// so a new release is picked up at the next load; the copy is only a
// fallback. It must be served from the page's folder (GET /wall-sw.js) to
// cover the page, and browsers run it only on https or on localhost.
"use strict";

const CACHE = "ioc-wall-2";
const SHELL = ["./", "static/wall.css", "static/alerts.js", "static/wall.js"];
const NETWORK_MS = 5000; // a hung connection must not hang the page

const scope = new URL(self.registration.scope);
const shell = new Set(SHELL.map((path) => new URL(path, scope).pathname));

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  const old = caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))));
  event.waitUntil(old.then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== scope.origin || !shell.has(url.pathname)) return;
  // Kept under the path alone: the page's ?token= never reaches the cache.
  event.respondWith(networkFirst(request, url.origin + url.pathname));
});

// The API's answer, or the kept copy when there is none: no connection, no
// answer in time, or a proxy in front saying that the API is away (5xx).
async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), NETWORK_MS);
  let response = null;
  try {
    // by URL: a navigation's Request cannot be copied with a signal added
    response = await fetch(request.url, { signal: abort.signal });
  } catch (error) {
    // no answer: the kept copy below
  } finally {
    clearTimeout(timer);
  }
  if (response && response.ok) {
    await cache.put(key, response.clone());
    return response;
  }
  if (response && response.status < 500) return response;
  const kept = await cache.match(key);
  return kept || response || Response.error();
}
