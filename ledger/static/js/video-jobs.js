// Live progress of the console's video jobs: fetch the panel again while a job is under way.
(function () {
  "use strict";
  function panel() { return document.getElementById("jobs"); }
  function refresh() {
    var current = panel();
    if (!current || current.dataset.active !== "true") return;
    fetch(current.dataset.url, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#jobs");
          if (fresh) {
            current.replaceWith(fresh);
            document.querySelectorAll("[data-testid=header-balance], [data-testid=console-balance]")
              .forEach(function (el) { el.textContent = fresh.dataset.balance; });
          }
        }
        setTimeout(refresh, 1500);
      })
      .catch(function () { setTimeout(refresh, 5000); });
  }
  setTimeout(refresh, 1500);
})();
