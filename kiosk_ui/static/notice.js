/* The privacy notice behaves like every other guest page: taps keep the visit alive, the idle warning
   shows, and when the visit is wiped (left alone, staff) the screen goes back to a fresh start page. */
"use strict";
(() => {
  const G = window.Guest;
  async function poll() {
    let state;
    try { state = await G.api("GET", "/api/session"); } catch (_) { return; }
    if (state.phase === "idle") { G.fresh(); return; }
    G.follow(state);
  }
  // Speech (when on): the notice from top to bottom; a text the kiosk cannot say is skipped.
  G.say([...document.querySelectorAll("main h1, main h2, main dt, main dd, main p")].map((el) => el.textContent));
  poll();
  setInterval(poll, 1000);
})();
