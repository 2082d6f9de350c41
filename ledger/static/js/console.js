// Live price on the console: the server prices (one place for the arithmetic), this only asks.
(function () {
  "use strict";
  document.querySelectorAll("form.console-model").forEach(function (form) {
    form.querySelectorAll(".js-hide").forEach(function (el) { el.hidden = true; });
    var price = form.querySelector("[data-price]");
    var error = form.querySelector("[data-quote-error]");
    var run = form.querySelector("button[value=run]");
    var shortNote = form.querySelector("[data-short]");
    var topUp = form.querySelector("[data-top-up]");
    var pending = null;
    function refresh() {
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, key) {
        if (key !== "csrf_token" && key !== "request_id") params.append(key, value);
      });
      if (pending) pending.abort();
      pending = new AbortController();
      fetch(form.dataset.quoteUrl + "?" + params.toString(), {signal: pending.signal, credentials: "same-origin"})
        .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
        .then(function (res) {
          if (res.ok) {
            price.textContent = "¥" + res.body.display;
            error.hidden = true;
            // Short of the price: the top-up link instead of the run button (the server checks again).
            var short = Number(res.body.amount) > Number(form.dataset.available);
            run.hidden = run.disabled = short;
            shortNote.hidden = !short;
            topUp.hidden = !short;
          } else {
            error.textContent = res.body.error ? res.body.error.message : "";
            error.hidden = false;
            run.disabled = true;
          }
        })
        .catch(function () { /* aborted by a newer change, or offline: the server checks again on run */ });
    }
    form.addEventListener("input", refresh);
    form.addEventListener("change", refresh);
  });
})();
