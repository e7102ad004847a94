#!/usr/bin/python3
"""Drives the strata dashboard in headless Chromium over the DevTools protocol
(Debian's chromium and python3-websocket): logs in with a token, starts a VM
with its Start button, opens its console, types a command through the browser's
own input pipeline into xterm.js, reads the guest's answer back from what the
page received, and saves a screenshot of the dashboard.

Usage: browser_console.py URL TOKEN VM SCREENSHOT
Exit status: 0 passed, 1 failed (says why), 77 Chromium cannot run here (says why).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77


def fail(why, code=1):
    print(why, flush=True)
    sys.exit(code)


try:
    import websocket  # python3-websocket
except ImportError:
    fail("python3-websocket is not installed", SKIP)


class Browser:
    def __init__(self):
        self.binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if not self.binary:
            fail("no chromium binary (Debian package chromium)", SKIP)
        self.profile = tempfile.mkdtemp(prefix="strata-chromium-")
        self.process = subprocess.Popen(
            [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             "--window-size=1280,1100", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if self.process.poll() is not None:
                fail("chromium exited at start: " + self.process.stderr.read().decode(errors="replace")[-2000:], SKIP)
            if time.time() > deadline:
                self.close()
                fail("chromium did not open its DevTools port within 60 s", SKIP)
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=60)
        self.next_id = 0

    def send(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    fail(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            fail(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what, seconds=120):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.2)
        transcript = self.evaluate("window.strataConsole && window.strataConsole.transcript")
        error = self.evaluate("document.getElementById('error').textContent")
        fail(f"timed out waiting for {what}; console so far: {transcript!r}; page error line: {error!r}")

    def key(self, key, code, text, key_code):
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=key_code,
                      **({"text": text} if kind == "keyDown" else {}))

    def type(self, text):
        """Key by key, as a keyboard would: xterm.js 3 reads keydown/keypress, not input events."""
        for char in text:
            self.key(char, "", char, ord(char.upper()) if char.isalnum() else 0)

    def close(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    url, token, vm, screenshot = sys.argv[1:5]
    browser = Browser()
    try:
        browser.send("Page.enable")
        browser.send("Page.navigate", url=url)
        browser.wait_for("document.readyState === 'complete' && !!document.getElementById('token')", "the login page")
        # The token typed into the login form, as a person would.
        browser.evaluate("document.getElementById('token').focus()")
        browser.send("Input.insertText", text=token)
        browser.key("Enter", "Enter", "\r", 13)
        row = f"document.querySelector('tr[data-vm=\"{vm}\"]')"
        browser.wait_for(f"!!{row} && {row}.children[2].textContent === 'stopped'", f"{vm} listed as stopped", 30)

        browser.evaluate(f"document.querySelector('button[data-vm=\"{vm}\"][data-action=\"start\"]').click()")
        browser.wait_for(f"{row}.children[2].textContent === 'running'", f"{vm} running", 60)
        browser.evaluate(f"document.querySelector('button[data-vm=\"{vm}\"][data-action=\"open\"]').click()")
        browser.wait_for("window.strataConsole.state === 'open'", "the console WebSocket to open", 30)
        browser.wait_for("window.strataConsole.transcript.includes('userspace up')", "the guest's shell", 240)
        time.sleep(1)  # let the shell print its prompt before we type

        # Typed into xterm.js's input element by the browser's input pipeline: xterm -> WebSocket -> daemon -> UART.
        browser.evaluate("document.querySelector('#terminal textarea').focus()")
        browser.type("echo web-$((6*7))")
        browser.key("Enter", "Enter", "\r", 13)
        browser.wait_for("window.strataConsole.transcript.includes('web-42')", "the guest's answer web-42", 60)
        # What xterm itself shows (its buffer), not only what the socket carried.
        shown = browser.evaluate(
            "(() => { const b = state.console.term._core.buffer; const lines = [];"
            " for (let y = 0; y < b.lines.length; y++) lines.push(b.translateBufferLineToString(y, true));"
            " return lines.join('\\n'); })()")
        if "web-42" not in (shown or ""):
            fail(f"xterm.js does not show the answer; its buffer: {shown!r}")

        # Two stats readings make a graph point; then the CPU column shows a figure.
        browser.wait_for(f"{row}.children[5].textContent.endsWith('%')", "the CPU figure", 30)
        time.sleep(2)
        image = browser.send("Page.captureScreenshot", format="png")["data"]
        with open(screenshot, "wb") as out:
            out.write(base64.b64decode(image))
        print(f"console answered web-42 in the browser; screenshot {screenshot}", flush=True)
    finally:
        browser.close()


main()
