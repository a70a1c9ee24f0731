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
  // Our own error answers carry HX-Retarget to the notice area, and a form that fails its
  // checks (422) re-renders itself. Anything else that fails (a proxy's 502 page, say) must
  // not replace what the reader typed.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status >= 400 && xhr.status !== 422 && !xhr.getResponseHeader("HX-Retarget")) {
      event.detail.shouldSwap = false;
      notice(xhr.status >= 500 ? "服务器暂时没有响应，请稍后重试。" : "请求没有成功，请刷新页面后重试。");
    }
  });
  // WeChat's networks come and go: say so instead of failing silently.
  document.addEventListener("htmx:sendError", function () {
    notice("网络不太稳定，请检查网络后重试。");
  });
  document.addEventListener("htmx:timeout", function () {
    notice("请求超时了，请稍后重试。");
  });

  // Speed buttons for the morning voice (1×, 1.5×, 2×): hidden until this script runs.
  function wireVoices(root) {
    root.querySelectorAll("[data-voice]").forEach(function (box) {
      var audio = box.querySelector("audio");
      var group = box.querySelector(".speeds");
      if (!audio || !group || group.dataset.wired) return;
      group.dataset.wired = "1";
      group.hidden = false;
      group.addEventListener("click", function (event) {
        var button = event.target.closest("button[data-speed]");
        if (!button) return;
        audio.playbackRate = parseFloat(button.dataset.speed);
        group.querySelectorAll("button").forEach(function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
      });
    });
  }
  // Autosave: a form with data-autosave="30000" gets an "autosave" event (which htmx posts)
  // every 30 seconds while its text keeps changing.
  function wireAutosave(root) {
    root.querySelectorAll("form[data-autosave]").forEach(function (form) {
      if (form.dataset.autosaveWired) return;
      form.dataset.autosaveWired = "1";
      var dirty = false;
      form.addEventListener("input", function () { dirty = true; });
      form.addEventListener("submit", function () { dirty = false; });
      window.setInterval(function () {
        if (!dirty || !document.body.contains(form)) return;
        dirty = false;
        htmx.trigger(form, "autosave");
      }, parseInt(form.dataset.autosave, 10) || 30000);
    });
  }

  // A drop's countdown: the server says how many seconds are left (so the phone's own clock
  // does not matter); at zero the buy button appears and the live block asks for fresh stock.
  function wireCountdowns(root) {
    root.querySelectorAll("[data-countdown]").forEach(function (box) {
      if (box.dataset.countdownWired) return;
      box.dataset.countdownWired = "1";
      var clock = box.querySelector("[data-countdown-clock]");
      var live = box.closest(".drop-live");
      var deadline = Date.now() + parseInt(box.dataset.countdown, 10) * 1000;
      function pad(n) { return (n < 10 ? "0" : "") + n; }
      function tick() {
        var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        if (clock) {
          clock.textContent = pad(Math.floor(left / 3600)) + ":" + pad(Math.floor(left % 3600 / 60)) + ":" + pad(left % 60);
        }
        if (left > 0) {
          window.setTimeout(tick, Math.min(1000, deadline - Date.now() - (left - 1) * 1000));
          return;
        }
        box.hidden = true;
        if (live) {
          live.querySelectorAll("[data-countdown-reveal]").forEach(function (el) { el.hidden = false; });
          if (window.htmx) htmx.trigger(live, "started");
        }
      }
      tick();
    });
  }
  // WeChat Pay inside WeChat's browser: the signed parameters are on the button.
  function wireWechatPay(root) {
    root.querySelectorAll("[data-wechat-pay]").forEach(function (button) {
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      button.addEventListener("click", function () {
        var bridge = window.WeixinJSBridge;
        if (!bridge) {
          var hint = document.querySelector("[data-wechat-hint]");
          if (hint) hint.hidden = false;
          return;
        }
        button.disabled = true;
        bridge.invoke("getBrandWCPayRequest", JSON.parse(button.dataset.wechatPay), function (res) {
          button.disabled = false;
          // Only the server's notice decides that an order is paid; the order page shows it.
          if (res && res.err_msg === "get_brand_wcpay_request:ok") {
            window.location.assign(button.dataset.done);
          }
        });
      });
    });
  }

  // Share cards inside WeChat: the page says what to share and carries the server's JS-SDK
  // signature for its own URL; WeChat's script (loaded on such pages only) does the rest.
  function wireWechatShare() {
    var meta = document.querySelector('meta[name="wechat-share"]');
    if (!meta || !window.wx) return;
    var card = JSON.parse(meta.content);
    var config = card.config;
    window.wx.config({
      debug: false,
      appId: config.appId,
      timestamp: config.timestamp,
      nonceStr: config.nonceStr,
      signature: config.signature,
      jsApiList: ["updateAppMessageShareData", "updateTimelineShareData"]
    });
    window.wx.ready(function () {
      var share = card.share;
      window.wx.updateAppMessageShareData({ title: share.title, desc: share.desc, link: share.link, imgUrl: share.imgUrl });
      window.wx.updateTimelineShareData({ title: share.title, link: share.link, imgUrl: share.imgUrl });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireWechatShare();
    wireVoices(document);
    wireAutosave(document);
    wireCountdowns(document);
    wireWechatPay(document);
  });
  document.addEventListener("htmx:load", function (event) {
    wireVoices(event.detail.elt);
    wireCountdowns(event.detail.elt);
  });
})();
