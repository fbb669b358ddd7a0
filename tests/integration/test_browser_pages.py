"""The territory pages in a real browser: Playwright for Python driving Debian's chromium against the
production server (``prm serve``) on the demo data. A person signs in with an API key, opens the tree,
finds a territory, collapses and expands it, opens a subtree and signs out; a cross-site form post (and
a same-site one without the token) is refused. Every page runs its script under the CSP with no
violation. Screenshots go to ``var/screenshots/browser/`` (``PRM_SCREENSHOTS_DIR``) for review.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright's own browser download does not
work here) and the ``playwright`` package: skipped with the reason when either is missing, except under
CI (``CI=true`` or ``PRM_REQUIRE_BROWSER=1``, which ``.ci/run`` sets after installing chromium), where
that is a failure.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from common.errors import PROBLEM_MEDIA_TYPE

PRM = Path(sys.executable).parent / "prm"
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PRM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("PRM_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(os.environ.get("PRM_SCREENSHOTS_DIR") or ROOT / "var" / "screenshots" / "browser")
#: How long one page action may wait (the browser's own timeout, not an assertion on speed).
ACTION_MS = 30_000


def _browser_problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module", autouse=True)
def _needs_a_browser() -> None:
    """Skip (or fail, under CI) before any server is started."""
    problem = _browser_problem()
    if problem:
        if REQUIRED:
            pytest.fail(f"the browser tests are required here (CI / PRM_REQUIRE_BROWSER=1): {problem}")
        pytest.skip(problem)


@dataclass
class Site:
    """The running server: its base URL and the demo users' API keys."""

    base: str
    keys: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("browser-site")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRM_", "FLASK_"))}
    env.update(
        PRM_DATABASE_URL=f"sqlite:///{folder / 'prm.sqlite3'}",
        PRM_SECRET_KEY=secrets.token_urlsafe(32),
        PRM_LOG_FORMAT="text",
    )
    subprocess.run([str(PRM), "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    keys_file = folder / "keys.txt"
    subprocess.run(
        [str(PRM), "demo", "seed", "--keys-file", str(keys_file)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    keys = dict(line.split(" ", 1) for line in keys_file.read_text().splitlines())
    port = _free_port()
    log = folder / "server.log"
    command = [str(PRM), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/livez", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, f"prm serve exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "prm serve did not start listening"
            time.sleep(0.2)
        yield Site(base, keys, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@dataclass
class Visit:
    """A fresh browser context (no cookies) with one page; collects console errors (CSP violations
    among them) and failed page loads."""

    page: Any
    context: Any
    name: str
    errors: list[str] = field(default_factory=list)
    shots: int = 0

    def shot(self, what: str) -> Path:
        self.shots += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{self.shots:02d}-{what}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def visit(browser: Any, request: pytest.FixtureRequest) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(ACTION_MS)
    page = context.new_page()
    v = Visit(page, context, request.node.name.removeprefix("test_")[:40])
    page.on("console", lambda msg: v.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: v.errors.append(str(exc)))
    yield v
    context.close()


def _sign_in(v: Visit, site: Site, user: str) -> None:
    v.page.fill("#api_key", site.keys[user])
    with v.page.expect_navigation():
        v.page.click("button[type=submit]")


def _visible(v: Visit, key: str) -> bool:
    return bool(v.page.locator(f'[id="t-{key}"] > summary').is_visible())


def test_a_person_signs_in_finds_a_territory_collapses_it_opens_a_subtree_and_signs_out(
    site: Site, visit: Visit
) -> None:
    page = visit.page
    tree = f"{site.base}/territory-models/1/tree.html"

    # Not signed in: the tree sends the browser to the sign-in page, which comes back to the tree.
    page.goto(tree)
    assert page.url.startswith(f"{site.base}/sign-in?next=")
    visit.shot("sign-in")
    _sign_in(visit, site, "cam-jp")
    assert page.url == tree
    assert page.text_content("#signed-in-user") == "Yuki CAM (Japan)"
    visit.shot("tree")

    # Collapsed below depth 2: the regions' countries show, what lies under a country does not.
    assert _visible(visit, "WW") and _visible(visit, "APAC") and _visible(visit, "JP")
    assert not _visible(visit, "JP-SEC") and not _visible(visit, "JP-SEC-RESELL-IDENTITY")

    # Search by key: the node is revealed (its ancestors opened) and highlighted.
    page.fill("#find", "jp-sec-resell-identity")
    page.press("#find", "Enter")
    assert _visible(visit, "JP-SEC-RESELL-IDENTITY")
    assert "hit" in (page.get_attribute('[id="t-JP-SEC-RESELL-IDENTITY"]', "class") or "")
    assert page.text_content("#find-status").startswith("1 of 1: JP-SEC-RESELL-IDENTITY")
    assert page.url.endswith("#t-JP-SEC-RESELL-IDENTITY")
    visit.shot("found-by-key")

    # Search by part of a name: every match in turn, Find again for the next.
    page.fill("#find", "named accounts")
    page.press("#find", "Enter")
    first = page.text_content("#find-status")
    assert first.startswith("1 of 3: ")
    page.click("#find-form button[type=submit]")
    assert page.text_content("#find-status").startswith("2 of 3: ")
    hit = page.locator("details.node.hit")
    assert hit.count() == 1 and "named accounts" in hit.get_attribute("data-name")
    page.fill("#find", "no such territory")
    page.press("#find", "Enter")
    assert "No territory matches" in page.text_content("#find-status")

    # Collapse all, then open one node by clicking it, then expand all.
    page.click("#collapse-all")
    assert _visible(visit, "APAC") and not _visible(visit, "JP")
    page.click('[id="t-APAC"] > summary .key')
    assert _visible(visit, "JP") and not _visible(visit, "JP-SEC")
    page.click('[id="t-APAC"] > summary .key')
    assert not _visible(visit, "JP")
    visit.shot("collapsed")
    page.click("#expand-all")
    assert _visible(visit, "JP-SEC-RESELL-IDENTITY") and _visible(visit, "GB-RESELL-NETWORKING")
    visit.shot("expanded")

    # A subtree of its own (?root=KEY), with the way back to the whole tree.
    with page.expect_navigation():
        page.click('[id="t-JP"] > summary a.sub')
    assert page.url == f"{tree}?root=JP"
    assert _visible(visit, "JP") and page.locator('[id="t-WW"]').count() == 0
    assert page.locator("nav.crumbs a").all_inner_texts() == ["whole tree", "WW", "APAC", "JP"]
    page.fill("#find", "JP-SEC-RESELL")
    page.press("#find", "Enter")
    assert _visible(visit, "JP-SEC-RESELL")
    visit.shot("subtree")
    page.goto(f"{tree}?root=APAC&depth=1")
    assert _visible(visit, "JP") and page.locator('[id="t-JP-SEC"]').count() == 0
    assert "more below" in page.locator('[id="t-JP"] > summary').inner_text()

    # Sign out: back at the sign-in page; the tree asks for a sign-in again.
    with page.expect_navigation():
        page.click("#sign-out")
    assert page.url == f"{site.base}/sign-in?signed_out=1"
    assert "You are signed out" in page.content()
    visit.shot("signed-out")
    page.goto(tree)
    assert page.url.startswith(f"{site.base}/sign-in?next=")
    assert visit.errors == [], visit.errors  # no CSP violation, no script error on any page


def test_a_partner_signs_in_but_sees_no_territory_page(site: Site, visit: Visit) -> None:
    page = visit.page
    page.goto(f"{site.base}/sign-in")
    _sign_in(visit, site, "northwind-user")
    resp = page.goto(f"{site.base}/territory-models/1/tree.html")
    assert resp is not None and resp.status == 403
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    visit.shot("partner-403")


ATTACKER_PAGE = """<!doctype html><html><body>
<h1>You won a prize</h1>
<form id="f" method="post" action="{target}"><input type="hidden" name="next" value="/"></form>
<script>document.getElementById("f").submit();</script>
</body></html>"""


def test_a_cross_site_post_without_the_csrf_token_is_refused(site: Site, visit: Visit) -> None:
    page, context = visit.page, visit.context
    tree = f"{site.base}/territory-models/1/tree.html"
    page.goto(tree)
    _sign_in(visit, site, "admin")
    assert page.url == tree

    # Another site (served by the browser itself: nothing leaves this machine) posts a form to sign-out.
    context.route(
        "http://attacker.test/**",
        lambda route: route.fulfill(
            status=200, content_type="text/html", body=ATTACKER_PAGE.format(target=f"{site.base}/sign-out")
        ),
    )
    attacker = context.new_page()
    with attacker.expect_response(lambda r: r.url == f"{site.base}/sign-out") as answer:
        attacker.goto("http://attacker.test/prize")
    resp = answer.value
    assert resp.status == 403 and resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "CSRF" in resp.json()["detail"]
    attacker.screenshot(path=str(SCREENSHOTS / f"{visit.name}-cross-site-refused.png"))

    # The same site with the cookie but without the token: refused too.
    same_site = context.request.post(f"{site.base}/sign-out", form={"next": "/"}, max_redirects=0)
    assert same_site.status == 403 and same_site.headers["content-type"] == PROBLEM_MEDIA_TYPE

    # Still signed in.
    page.goto(tree)
    assert page.url == tree and page.locator("#signed-in-user").is_visible()
    # ... and the session cookie is HttpOnly and SameSite=Strict
    cookie = next(c for c in context.cookies() if c["name"] == "prm_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert re.fullmatch(r"[\w.-]+", cookie["value"]) and site.keys["admin"] not in cookie["value"]
