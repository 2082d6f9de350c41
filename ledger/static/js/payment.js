// Live status of a pending top-up: poll our API, reload the page when the order leaves "pending".
(function () {
  "use strict";
  var card = document.getElementById("payment");
  if (!card || card.dataset.status !== "pending") return;
  var delay = 2000;
  function poll() {
    fetch(card.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (order) {
        if (order && order.status !== "pending") { window.location.reload(); return; }
        delay = Math.min(delay * 1.2, 10000);
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, 10000); });
  }
  setTimeout(poll, delay);
})();
