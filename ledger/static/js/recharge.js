// /recharge: the pay button names the amount and the method as the person picks them; a typed
// amount clears the preset and a preset clears what was typed. Without this the server-rendered
// label names the default, and the server reads the amount the same way (money.normalise_typed_amount).
(function () {
  "use strict";
  var form = document.querySelector("[data-testid=recharge-form]");
  if (!form) return;
  var button = form.querySelector("[data-testid=recharge-submit]");
  var custom = form.querySelector("input[name=custom_amount]");
  var presets = form.querySelectorAll("input[name=amount]");

  // What a person typed, read as the server reads it: full-width digits, ¥ before, 元 after, 1,000.
  function typedAmount(text) {
    text = text.normalize("NFKC").trim();
    text = text.replace(/^[¥￥]\s*/, "").replace(/\s*(元|块钱|块|CNY|RMB)$/i, "");
    if (/^[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$/.test(text)) text = text.replace(/,/g, "");
    return /^[0-9]{1,14}(\.[0-9]{1,2})?$/.test(text) && /[1-9]/.test(text) ? text : null;
  }

  // "1234.5" -> "1,234.50", without floating point.
  function display(amount) {
    var parts = amount.split(".");
    var whole = parts[0].replace(/^0+(?=[0-9])/, "").replace(/\B(?=([0-9]{3})+$)/g, ",");
    return whole + "." + ((parts[1] || "") + "00").slice(0, 2);
  }

  function chosenAmount() {
    if (custom.value.trim()) return typedAmount(custom.value);
    var checked = form.querySelector("input[name=amount]:checked");
    return checked ? checked.value : null;
  }

  function relabel() {
    var method = (form.querySelector("input[name=pay_type]:checked") || {}).value === "native" ? "native" : "alipay";
    var amount = chosenAmount();
    button.textContent = amount === null
      ? button.getAttribute("data-label-" + method + "-none")
      : button.getAttribute("data-label-" + method).replace("{amount}", display(amount));
  }

  custom.addEventListener("input", function () {
    if (custom.value.trim()) presets.forEach(function (preset) { preset.checked = false; });
    relabel();
  });
  presets.forEach(function (preset) {
    preset.addEventListener("change", function () { custom.value = ""; relabel(); });
  });
  form.querySelectorAll("input[name=pay_type]").forEach(function (method) {
    method.addEventListener("change", relabel);
  });
  relabel();
})();
