"""Screenshots of the Dagster UI for the docs, taken with headless Chromium.

Run it against a running `dagster dev` that has materialized the demo (scripts/demo.sh):

    python scripts/screenshots.py                       # http://127.0.0.1:$DAGSTER_PORT
    python scripts/screenshots.py --url http://127.0.0.1:3000 --audience big_spenders

It writes docs/images/asset-graph.png (the global asset lineage) and
docs/images/audience-plots.png (one audience's size / entered / exited plots). Chromium is
driven through its DevTools protocol (the `websockets` package, which uvicorn[standard] already
brings), so nothing beyond Debian's `chromium` is needed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--window-size=1600,1000",
)  # fmt: skip


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("error: chromium not found (apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Page:
    """One browser tab, driven by DevTools protocol commands."""

    def __init__(self, socket_url: str) -> None:
        self.ws: ClientConnection = connect(socket_url, max_size=64 * 1024 * 1024)
        self.ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def text(self) -> str:
        result = self.send("Runtime.evaluate", expression="document.body.innerText")
        return str(result.get("result", {}).get("value", ""))

    def open(self, url: str, *, wait_for: Sequence[str], settle: float = 3.0) -> None:
        """Navigate and wait until every text in `wait_for` shows (the UI loads by GraphQL)."""
        self.send("Page.navigate", url=url)
        deadline = time.time() + 90
        while time.time() < deadline:
            shown = self.text()
            if all(text in shown for text in wait_for):
                time.sleep(settle)  # layout and charts finish drawing
                if self.click("Skip"):  # "Join the Dagster community", shown once
                    time.sleep(1)
                return
            time.sleep(1)
        shown = " ".join(self.text().split())[:300]
        raise TimeoutError(f"{url}: {list(wait_for)} did not show within 90 s; it shows: {shown}")

    def click(self, label: str) -> bool:
        """Click the first button (or tab) whose text is `label`."""
        script = (
            "(() => { const b = [...document.querySelectorAll('button, [role=tab], a')]"
            f".find(e => e.innerText.trim() === {json.dumps(label)});"
            " if (b) { b.click(); return true; } return false; })()"
        )
        result = self.send("Runtime.evaluate", expression=script)
        return bool(result.get("result", {}).get("value"))

    def scroll_to(self, label: str) -> None:
        """Scroll the element whose text is `label` to the top of the view."""
        script = (
            "(() => { const e = [...document.querySelectorAll('button, [role=tab], a')]"
            f".find(e => e.innerText.trim() === {json.dumps(label)});"
            " if (e) { e.scrollIntoView({block: 'start'}); } })()"
        )
        self.send("Runtime.evaluate", expression=script)
        time.sleep(1)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def open_browser(port: int, profile: Path) -> subprocess.Popen[bytes]:
    command = [chromium(), *FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
               "about:blank"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def first_tab(port: int) -> str:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
                tabs = [t for t in json.loads(answer.read()) if t.get("type") == "page"]
            if tabs:
                return str(tabs[0]["webSocketDebuggerUrl"])
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("chromium's DevTools endpoint did not answer")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_url = f"http://127.0.0.1:{os.environ.get('DAGSTER_PORT', '3000')}"
    parser.add_argument("--url", default=default_url, help="the Dagster UI")
    parser.add_argument("--audience", default="big_spenders", help="audience whose plots to show")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        browser = open_browser(port, Path(profile))
        try:
            page = Page(first_tab(port))
            page.send("Page.enable")
            page.open(
                f"{args.url}/asset-groups",
                wait_for=["Global asset lineage", "reverse_etl", "computed_traits"],
            )
            page.screenshot(args.out / "asset-graph.png")
            page.open(f"{args.url}/assets/audiences/{args.audience}",
                      wait_for=["Metadata", "Plots", "previous_size"])  # fmt: skip
            if not page.click("Plots"):
                raise RuntimeError("the asset page has no Plots toggle")
            time.sleep(5)  # the charts draw
            page.scroll_to("Plots")  # the plots (size, entered, exited) fill the picture
            page.screenshot(args.out / "audience-plots.png")
        finally:
            browser.terminate()
            browser.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
