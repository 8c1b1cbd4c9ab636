#!/usr/bin/env python3
"""The `nats` cookbook as a test (run by `make test`): every `nats` line of the README
and of docs/*.md is run, exactly as written, with the real `nats` CLI (built by `make
deps`) against a running shop, and its output checked for what the docs say it shows.

The shop runs as `make run` starts it (the `stack` binary), on free ports, in a temp
directory that plays the project's: `data/secrets/nats-passwords.env` is where the docs
say, and the lines run from there. Two things differ from a person's terminal, and only
these: the server's address in `nats context add` is the test's port instead of 4222,
and the contexts are kept in a temp directory (XDG_CONFIG_HOME) instead of your
~/.config. `$TOKEN` is victor's, from a login. Before the lines run, victor has bought
one article; a `nats sub` line runs in the background while the test makes what it
waits for (a purchase, a sign-up), then is stopped.

A line the CLI refuses (a non-zero exit), a line whose output lacks what is expected,
and a `nats` line of the docs this test does not know all fail the test.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, TARGET, Stack, request  # noqa: E402

# What each line of the docs shows, by the line as written (after its `# comment`).
EXPECTED = {
    '. data/secrets/nats-passwords.env': [],
    'nats context add shop --server nats://127.0.0.1:4222 --user ops --password "$SHOP_NATS_PASSWORD_OPS" --select':
        ['Context "shop"', "Username: ops", "Connection: OK"],
    'nats context add shop-gateway --server nats://127.0.0.1:4222 --user gateway --password "$SHOP_NATS_PASSWORD_GATEWAY" --inbox-prefix _INBOX_gateway':
        ['Context "shop-gateway"', "Inbox Prefix: _INBOX_gateway"],
    "nats micro ls": ["auth", "orders", "users", "0.1.0"],
    "nats micro ping": ["orders ", "users ", "auth ", "rtt="],
    "nats micro info users": ["Service: users", "Subject: users.create", "Subject: users.verify",
                              "Subject: users.get", "Queue Group: q"],
    "nats micro stats orders": ["orders Service Statistics", "articles", "purchases", "buy"],
    "nats req users.get '{\"username\":\"victor\"}'": ['{"id":1,"username":"victor"}'],
    "nats req users.get '{\"username\":\"nobody\"}'": ["Nats-Service-Error: no user named nobody",
                                                       "Nats-Service-Error-Code: 404",
                                                       "Shop-Error-Reason: unknown_user"],
    "nats req orders.articles ''": ['"articles":[{"id":1,"name":"Article 1","price":1000}'],
    "nats --context shop-gateway req auth.login '{\"username\":\"victor\",\"password\":\"1234\"}'":
        ['"access_token":"eyJ', '"token_type":"Bearer"', '"username":"victor"'],
    "nats --context shop-gateway req -H \"Authorization:Bearer $TOKEN\" orders.buy '{\"username\":\"victor\",\"article_id\":1}'":
        ['"message":"Purchase successful"', '"user":"victor"'],
    "nats req -H \"Authorization:Bearer $TOKEN\" orders.purchases '{\"username\":\"victor\"}'":
        ['"user":"victor"', '"purchases":["Article', '"count":'],
    "nats req -H \"Authorization:Bearer $TOKEN\" orders.purchases '{\"username\":\"victor\",\"limit\":10,\"newest_first\":true}'":
        ['"user":"victor"', '"count":', '"total":'],
    "nats req -H \"Authorization:Bearer $TOKEN\" orders.purchases '{\"username\":\"victor\",\"limit\":5,\"newest_first\":true}'":
        ['"user":"victor"', '"count":', '"total":'],
    "nats req orders.purchases '{\"username\":\"victor\"}'": ["Nats-Service-Error-Code: 401",
                                                             "Shop-Error-Reason: token_required"],
    'nats req auth.verify "{\\"token\\":\\"$TOKEN\\"}"': ['{"username":"victor","valid":true}'],
    "nats sub 'orders.events.>'": ['Received on "orders.events.purchased.victor"', '"username":"victor"'],
    "nats sub 'users.events.>'": ['Received on "users.events.created.', '"created_at"'],
    "nats sub 'auth.keys.>'": ["Subscribing on auth.keys.>"],
    "nats stream info ORDERS": ["Information for Stream ORDERS", "Subjects: orders.events.>", "Messages:"],
    "nats stream get ORDERS 1": ["ORDERS#1", "orders.events.purchased.victor", "Nats-Msg-Id:"],
    "nats stream get AUTH_KEYS 1": ["AUTH_KEYS#1", '"kty":"OKP"', '"alg":"EdDSA"'],
    "nats consumer ls ORDERS": ["orders-appender-", "Writes purchases.json of one orders instance"],
}

# Lines of the docs' code blocks that are not run: placeholders a person replaces.
NOT_RUN = ["TOKEN=eyJ..."]


def doc_lines():
    """The `nats` lines (and the line reading the passwords) of the README and docs/, in
    order, each once, continuation lines joined, `# comments` dropped."""
    found = []
    for page in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(page, encoding="utf-8") as f:
            blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", f.read(), flags=re.S)
        for block in blocks:
            joined = re.sub(r"\\\n\s*", "", block)
            for line in joined.splitlines():
                command = strip_comment(line).strip()
                if (command.startswith("nats ") or command.startswith(". data/")) and command not in found:
                    found.append(command)
    return found


def strip_comment(line):
    """The line without a trailing `# comment` (a # outside quotes, after a space)."""
    quote, escaped = None, False
    for i, c in enumerate(line):
        if escaped:
            escaped = False
        elif c == "\\" and quote != "'":
            escaped = True
        elif quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i]
    return line


def main():
    nats = os.path.join(TARGET, "go-bin", "nats")
    if not os.path.exists(nats):
        raise SystemExit(f"{nats} is missing: run `make deps` (it builds the nats CLI with go install)")
    lines = doc_lines()
    unknown = [line for line in lines if line not in EXPECTED]
    if unknown:
        raise SystemExit("cookbook: lines of the docs this test does not know (add them to EXPECTED):\n  "
                         + "\n  ".join(unknown))
    home = tempfile.mkdtemp(prefix="shop-cookbook-")
    failures, ran = [], 0
    with Stack(home) as shop:
        token = request("POST", shop.url("gateway", "/api/login"),
                        {"username": "victor", "password": "1234"})[1]["access_token"]
        status, _ = request("POST", shop.url("gateway", "/api/buy"), {"article_id": 2}, token=token,
                            headers={"Idempotency-Key": "cookbook-first"})
        assert status == 201, status
        env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(home, "config"), TOKEN=token,
                   PATH=os.path.dirname(nats) + os.pathsep + os.environ["PATH"])
        # What a `nats sub` line waits for, made while it listens.
        triggers = {
            "orders.events.>": lambda: request("POST", shop.url("gateway", "/api/buy"), {"article_id": 1},
                                               token=token, headers={"Idempotency-Key": uuid.uuid4().hex}),
            "users.events.>": lambda: request("POST", shop.url("users", "/users"),
                                              {"username": f"cook{uuid.uuid4().hex[:8]}", "password": "a long password"}),
        }
        # The passwords file is read by the shell that runs the lines after it.
        prelude = []
        for line in lines:
            command = line.replace("nats://127.0.0.1:4222", shop.nats_url)
            if line.startswith(". "):
                prelude.append(command)
                continue
            ran += 1
            script = "\n".join(prelude + [command])
            if line.startswith("nats sub "):
                subject = line.split("'")[1]
                with subprocess.Popen(["bash", "-c", script], cwd=home, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
                    time.sleep(1.5)
                    if subject in triggers:
                        triggers[subject]()
                    time.sleep(1.5)
                    proc.terminate()
                    output, _ = proc.communicate(timeout=30)
                refused = "Permissions Violation" in output or "nats: error" in output
            else:
                done = subprocess.run(["bash", "-c", script], cwd=home, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
                output = done.stdout
                refused = done.returncode != 0
            missing = [want for want in EXPECTED[line] if want not in output]
            verdict = "refused" if refused else ("lacks " + ", ".join(repr(m) for m in missing) if missing else "ok")
            print(f"  {verdict:>7}: {line}", flush=True)
            if refused or missing:
                failures.append(f"{line}\n    {verdict}\n    its output:\n      "
                                + "\n      ".join(output.strip().splitlines()[-15:]))
    if failures:
        raise SystemExit("cookbook: lines that failed (the shop's log: " + shop.log + "):\n  "
                         + "\n  ".join(failures))
    shutil.rmtree(home, ignore_errors=True)
    print(f"cookbook: {ran} nats lines of the README and docs/ ran as written and showed what they say "
          f"({os.path.relpath(nats, ROOT) if nats.startswith(ROOT) else nats}, "
          f"{subprocess.run([nats, '--version'], capture_output=True, text=True).stdout.strip()})")


if __name__ == "__main__":
    main()
