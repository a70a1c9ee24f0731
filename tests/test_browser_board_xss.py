"""Chromium loads every board page that shows the XSS corpus with `alert`, `confirm`, `prompt`
and `print` trapped, and with the Content-Security-Policy bypassed, so that the sanitiser
alone is what is tested (the policy would block inline script anyway)."""

from __future__ import annotations

import pytest

from tests.test_board_xss import posted  # noqa: F401  (the fixture)

TRAP = """
window.__calls = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (...args) => { window.__calls.push(name + ":" + args.join(",")); };
}
"""


@pytest.mark.browser_context_args(bypass_csp=True)
def test_no_payload_runs_in_chromium(phone, posted):  # noqa: F811
    phone.page.add_init_script(TRAP)
    paths = [f"/board/t/{thread_id}" for thread_id in posted]
    paths += ["/board/", "/board/s/wenda", "/", "/search?q=alert"]
    for path in paths:
        response = phone.open(path)
        assert response.status == 200, path
        page = phone.page
        # Give handlers (onload, onerror of broken images, autofocus, htmx triggers) a moment
        # to fire, then look: nothing was called and htmx found nothing to act on.
        page.wait_for_load_state("networkidle")
        page.mouse.move(100, 200)
        assert page.evaluate("window.__calls") == [], path
        dangerous = page.evaluate(
            """() => [...document.querySelectorAll('.post-body *')].filter(el =>
                [...el.attributes].some(a => /^on|hx-|^data-hx|^style$/i.test(a.name))
                || (el.href && /^(javascript|data|vbscript):/i.test(el.href))
              ).map(el => el.outerHTML)"""
        )
        assert dangerous == [], path
    phone.screenshot("board-xss-thread")
