"""A `wick` process for the campaign scripts (soak.py, crash.py): started on
a free loopback port with the given environment, its address read from the
line it prints once it serves, plain HTTP requests to it, and its memory."""

import http.client
import os
import re
import subprocess
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
WICK = os.path.join(ROOT, "target", "release", "wick")


class Wick:
    def __init__(self, binary, env):
        self.binary = binary
        self.env = dict(os.environ, WICK_ADDR="127.0.0.1:0",
                        WICK_SITE_ROOT=os.path.join(ROOT, "target", "site"), **env)
        self.start()

    def start(self):
        self.proc = subprocess.Popen([self.binary], stdout=subprocess.PIPE, env=self.env)
        line = self.proc.stdout.readline().decode().strip()
        url = urllib.parse.urlparse(line.rsplit(" ", 1)[-1])
        self.host, self.port = url.hostname, url.port
        # The send function's address carries a build hash: read it from the composer form.
        page = self.request("GET", "/")[1].decode()
        self.send_url = re.search(r'action="(/api/send_message[^"]*)"', page).group(1)

    def request(self, method, path, body=None, headers=None, timeout=600):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        """SIGTERM, as systemd stops it."""
        self.proc.terminate()
        self.proc.wait()

    def kill(self):
        """SIGKILL: no shutdown code runs."""
        self.proc.kill()
        self.proc.wait()
