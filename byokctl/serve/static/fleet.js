// byokctl serve: keeps the fleet table current without a reload.
// Polls /api/v1/fleet with the page's own query every half second and rebuilds the rows with
// DOM calls (textContent only: no markup from data). Served as a file: the CSP allows no
// inline script.
(function () {
  "use strict";
  var POLL_MS = 500;
  var tbody = document.getElementById("fleet-rows");
  var live = document.getElementById("live");
  if (!tbody) { return; }

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value === null || value === undefined ? "" : String(value);
    if (cls) { el.className = cls; }
    return el;
  }

  function episodes(list) {
    if (!list.length) { return "\u2013"; }
    return list.map(function (e) {
      return e.outcome + " since " + e.opened_at + " (" + (e.notified_at ? "e-mailed" : "e-mail pending") + ")";
    }).join("; ");
  }

  function row(w) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-name", w.name);
    tr.className = "kind-" + w.kind;
    var name = document.createElement("td");
    var link = document.createElement("a");
    link.href = "/workspaces/" + encodeURIComponent(w.name);
    link.textContent = w.name;
    name.appendChild(link);
    tr.appendChild(name);
    tr.appendChild(text("td", w.kind === "byok" ? w.route + " \u00b7 " + w.model : w.route, "route"));
    tr.appendChild(text("td", w.reason, "reason"));
    tr.appendChild(text("td", w.since));
    tr.appendChild(text("td", episodes(w.open_episodes)));
    tr.appendChild(text("td", w.breaker));
    tr.appendChild(text("td", w.credits.today.byok + " / " + w.credits.today.neo));
    tr.appendChild(text("td", w.credits.month.byok + " / " + w.credits.month.neo));
    return tr;
  }

  function set(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = String(value); }
  }

  function render(doc) {
    var fragment = document.createDocumentFragment();
    doc.workspaces.forEach(function (w) { fragment.appendChild(row(w)); });
    tbody.replaceChildren(fragment);
    set("total", doc.total);
    set("count-byok", doc.counts.byok || 0);
    set("count-neo", doc.counts.neo || 0);
    set("matched", doc.matched);
    set("page", doc.page);
    set("pages", doc.pages);
    if (live) {
      live.setAttribute("data-generation", String(doc.generation));
      live.className = "live";
    }
  }

  function poll() {
    fetch("/api/v1/fleet" + window.location.search, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(render)
      .catch(function () { if (live) { live.className = "live stale"; } })
      .finally(function () { window.setTimeout(poll, POLL_MS); });
  }

  window.setTimeout(poll, POLL_MS);
})();
