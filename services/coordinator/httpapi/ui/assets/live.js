// Keeps a saga's page live: every two seconds it fetches the page's live
// part (/ui/sagas/{id}/live, server-rendered) and puts it in place; when the
// state changes it reloads the page, so that its buttons follow. It stops
// when the saga is over, and after ten failures in a row says so.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || live.dataset.terminal === "true") {
    return;
  }
  var state = live.dataset.state;
  var failures = 0;
  function again(ms) {
    window.setTimeout(tick, ms);
  }
  function tick() {
    fetch(live.dataset.src, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("status " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        failures = 0;
        var t = document.createElement("template");
        t.innerHTML = html.trim();
        var next = t.content.getElementById("live");
        if (!next) {
          throw new Error("no live part");
        }
        if (next.dataset.state !== state) {
          window.location.reload();
          return;
        }
        live.replaceWith(next);
        live = next;
        again(2000);
      })
      .catch(function () {
        failures++;
        if (failures >= 10) {
          var stale = document.getElementById("stale");
          if (stale) {
            stale.hidden = false;
          }
          return;
        }
        again(5000);
      });
  }
  again(2000);
})();
