// Copy buttons: <button data-copy="#id"> copies that input's value (or that element's text); shown only
// where the clipboard can be used.
(function () {
  "use strict";
  if (!navigator.clipboard) return;
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = "value" in source ? source.value : source.textContent.trim();
      navigator.clipboard.writeText(text).then(function () {
        button.textContent = button.dataset.copiedLabel || label;
        setTimeout(function () { button.textContent = label; }, 2000);
      }, function () {
        if (source.select) { source.select(); } else { window.getSelection().selectAllChildren(source); }
      });
    });
  });
})();
