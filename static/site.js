// 晨读: small progressive enhancements on top of htmx. Every page works without this file.
(function () {
  "use strict";
  function notice(text) {
    var box = document.getElementById("notice");
    if (!box) return;
    var p = document.createElement("div");
    p.className = "error-box";
    p.setAttribute("data-status", "network");
    p.textContent = text;
    box.replaceChildren(p);
  }
  // WeChat's networks come and go: say so instead of failing silently.
  document.addEventListener("htmx:sendError", function () {
    notice("网络不太稳定，请检查网络后重试。");
  });
  document.addEventListener("htmx:timeout", function () {
    notice("请求超时了，请稍后重试。");
  });
})();
