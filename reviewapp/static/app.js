// Live progress for background jobs: polls the element's data-progress-url every second
// while the job is queued or running, then reloads the page once to show the results.
(function () {
  "use strict";
  var box = document.getElementById("backtest-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-progress-url");
  var status = box.getAttribute("data-status");
  if (status !== "queued" && status !== "running") { return; }
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = value; }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        set("status", p.status); set("processed", p.processed); set("total", p.total);
        var pct = Math.round(p.percent || 0);
        var bar = box.querySelector('[data-field="bar"]');
        if (bar) { bar.value = pct; bar.textContent = pct + " %"; }
        if (p.status === "done" || p.status === "failed") { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
}());
