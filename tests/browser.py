"""Headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it when absent): load a
page from disk and report its images and every resource the page requested.

The pages carry a Content-Security-Policy that forbids scripts; the checked copy allows one
inline script (the checker) and nothing else."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions"]
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CHECKER = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var requests = performance.getEntriesByType("resource").map(function (e) { return e.name; })
    .filter(function (n) { return n.indexOf("data:") !== 0; });
  document.body.setAttribute("data-check", "images=" + images.length + ";broken=" +
                             broken.length + ";requests=" + requests.join(" "));
});
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError("chromium is not installed: run `bash .ci/run` (it installs "
                             "Debian's chromium) or `apt-get install chromium`")
    return path


def load_offline(page: Path, work: Path) -> dict:
    """Open a copy of ``page`` with the checker; returns image counts and the URLs of every
    resource the page requested (data: URIs excluded)."""
    work.mkdir(parents=True, exist_ok=True)
    text = page.read_text()
    assert CSP in text, "the page lacks its Content-Security-Policy"
    copy = work / "check.html"
    copy.write_text(text.replace(CSP, CSP + "; script-src 'unsafe-inline'")
                    .replace("</body>", CHECKER + "</body>"))
    done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={work / 'profile'}",
                           "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
                          capture_output=True, text=True, timeout=180)
    match = re.search(r'data-check="images=(\d+);broken=(\d+);requests=([^"]*)"', done.stdout)
    assert match, f"checker did not run: {done.stderr[-2000:]}"
    return {"images": int(match.group(1)), "broken": int(match.group(2)),
            "requests": match.group(3).split()}


def screenshot(page: Path, png: Path, work: Path, height: int = 4000) -> None:
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={work / 'profile-shot'}",
                    f"--window-size=1200,{height}", f"--screenshot={png}", page.as_uri()],
                   capture_output=True, timeout=180, check=True)
