// Copy buttons: <button data-copy="#input-id">; shown only where the clipboard can be used.
(function () {
  "use strict";
  if (!navigator.clipboard) return;
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.value).then(function () {
        button.textContent = button.dataset.copiedLabel || label;
        setTimeout(function () { button.textContent = label; }, 2000);
      }, function () { source.select(); });
    });
  });
})();
