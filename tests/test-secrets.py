#!/usr/bin/env python3
"""Secrets never leak: a full life (check-config, once, run with token renewals, a 401, an
invalid_grant, a reload, webhooks with a signing secret and a bearer header, webhook URLs holding
their own credential as Teams' and Slack's do (a sig= query parameter from url-file, a last path
segment from the credential webhook-NAME-url), status, debug logging) with distinctive secret
values, then every log line, printed event and command output is searched for each of them, and for
the simulator's token patterns (access tokens at-N-HEX, rotated refresh tokens rt-N-HEX), and so is
every row of the state store but the stored refresh token. Also: a secret or URL file readable by
others draws a warning naming it; 0600 does not."""

import json
import os
import re
import secrets
import signal
import sqlite3

from harness import Daemon, Env, Failure, Sim, WebhookReceiver, check, main, run, run_once, wait_until

ACCESS_TOKEN = re.compile(r"at-\d+-[0-9a-f]{16}")
ROTATED_REFRESH_TOKEN = re.compile(r"rt-\d+-[0-9a-f]{16}")

SCENARIO = {"orders": [
    {"customer": "c1", "order": f"o{i}", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 3}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 1, "prefulfillmentpending": 2}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 2, "prefulfillmentpending": 1}},
            {"status": "fulfilled", "quantities": {"fulfilled": 3}}]}]}
    for i in (1, 2)]}


def distinctive(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def changed(order):
    return lambda e: e["type"] == "provwatch.lineitem.changed" and e["data"]["order_id"] == order


def test_no_secret_in_any_output():
    env = Env("secrets")
    client_secret = distinctive("client-secret")
    initial_refresh = distinctive("initial-refresh")
    webhook_secret = distinctive("webhook-key")
    bearer = distinctive("receiver-bearer")
    teams_sig = f"teams-sig-{secrets.token_hex(17)}"  # as long as a real one
    slack_token = distinctive("slacktoken")
    env.write("client-secret", client_secret + "\n", 0o600)
    env.write("refresh-token", initial_refresh + "\n", 0o600)
    env.write("webhook-secret", webhook_secret + "\n", 0o600)
    # tokens live 4 s: provwatch renews them several times during the run
    sim = Sim(env.dir, "--client-secret", client_secret, "--refresh-token", initial_refresh, "--token-ttl", "4",
              "--strict-rotation", scenario=SCENARIO)
    receiver = WebhookReceiver(env.dir, "secrets", secret=webhook_secret)
    creds = os.path.join(env.dir, "credentials")
    os.mkdir(creds, 0o700)
    debug = {"PROVWATCH_DEBUG": "1", "CREDENTIALS_DIRECTORY": creds}
    outputs = {}  # what provwatch wrote, by where it came from
    refresh_tokens = {initial_refresh}
    d = None
    try:
        # a Teams Workflows URL (longer than a configuration line) from url-file, a Slack one from the
        # credential; both hold their credential
        base = f"http://127.0.0.1:{receiver.port}"
        teams_path = (f"/powerautomate/automations/direct/workflows/{secrets.token_hex(16)}"
                      "/triggers/manual/paths/invoke"
                      f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={teams_sig}")
        slack_path = f"/services/T0AB12CD3/B0EF45GH6/{slack_token}"
        check(len(base + teams_path) > 199, "the Teams URL is longer than a configuration line")
        env.write("teams.url", base + teams_path + "\n", 0o600)
        env.write("credentials/webhook-slack-url", base + slack_path + "\n", 0o600)
        common = f"secret-file = {env.dir}/webhook-secret\nheader = Authorization: Bearer {bearer}\n"
        hook = (f"\n[webhook]\nurl = {receiver.url}\n{common}"
                f"[webhook teams]\nurl-file = {env.dir}/teams.url\n{common}"
                f"[webhook slack]\n{common}")
        orders = [("c1", "o1"), ("c1", "o2")]
        cfg = env.config(sim, orders, poll={"interval": "1s"}, extra=hook)

        p = run(["-c", cfg, "check-config"], env=debug)
        check(p.returncode == 0, f"check-config: {p.returncode} {p.stderr}")
        outputs["check-config stdout"], outputs["check-config stderr"] = p.stdout, p.stderr
        for masked in (f"{base}/powerautomate/automations/direct/workflows/.../triggers/manual/paths/invoke?... "
                       f"(from {env.dir}/teams.url)\n",
                       f"{base}/services/.../.../... (from credential webhook-slack-url)\n"):
            check(masked in p.stdout, f"check-config shows {masked!r}: {p.stdout}")

        rc, events, err = run_once(cfg, env=debug)
        check(rc == 0 and len(events) == 2, f"once: {rc} {events} {err}")
        outputs["once stdout"] = "\n".join(json.dumps(e) for e in events)
        outputs["once stderr"] = err
        check("debug: " in err, "debug logging is on")
        refresh_tokens.add(sim.control("GET", "refresh-token")["refresh_token"])

        d = Daemon(cfg, env=debug)
        n = len(d.all_events)
        sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
        d.wait_event(changed("o1"), 20, "o1 changed")
        # renewals ahead of expiry
        t0 = len(sim.requests(kind="token"))
        wait_until(lambda: len(sim.requests(kind="token")) >= t0 + 2, 20, "two token renewals")
        refresh_tokens.add(sim.control("GET", "refresh-token")["refresh_token"])
        # a 401: every access token expires at once
        idx = sim.control("GET", "requests?since=0")["next"]
        sim.control("POST", "tokens/expire")
        wait_until(lambda: any(r["status"] == 401 for r in sim.requests(idx)), 20, "a 401")
        # an invalid_grant, then the endpoint works again
        sim.fault(target="token", kind="invalid_grant", count=1)
        sim.control("POST", "tokens/expire")
        d.wait_log("invalid_grant", 20, "the invalid_grant logged")
        n = len(d.all_events)
        sim.control("POST", "advance", {"customer": "c1", "order": "o2"})
        d.wait_event(changed("o2"), 30, "o2 changed after the invalid_grant", n)
        refresh_tokens.add(sim.control("GET", "refresh-token")["refresh_token"])
        # a reload, then more changes
        env.config(sim, orders, poll={"interval": "2s"}, extra=hook)
        d.send(signal.SIGHUP)
        d.wait_log("Reloading configuration", 10, "the reload")
        n = len(d.all_events)
        sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
        d.wait_event(changed("o1"), 20, "o1 changed after the reload", n)
        ids = {e["id"] for e in d.all_events}
        wait_until(lambda: ids <= {a["id"] for a in receiver.attempts() if a["answered"] == 204}, 20,
                   "every event delivered to the webhook")
        check(d.stop() == 0, "clean exit")
        outputs["run stdout"] = "\n".join(json.dumps(e) for e in d.all_events)
        outputs["run stderr"] = d.log()
        refresh_tokens.add(sim.control("GET", "refresh-token")["refresh_token"])

        # the state store: events, queues, dead letters, orders, kv; not the stored refresh token, which
        # is meant to be there
        db = sqlite3.connect(f"file:{os.path.join(env.state, 'provwatch.db')}?mode=ro", uri=True)
        try:
            rows = []
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                rows += [f"{table}: {row}" for row in db.execute(f'SELECT * FROM "{table}"')
                         if not (table == "kv" and row[0] == "refresh-token")]
        finally:
            db.close()
        outputs["state store"] = "\n".join(rows)
        check("auth-state" in outputs["state store"] and "orders: " in outputs["state store"], "the store was read")

        for args in (["status"], ["status", "--json"]):
            p = run(["-c", cfg] + args, env=debug)
            check(p.returncode == 0, f"{args}: {p.returncode} {p.stderr}")
            outputs[" ".join(args) + " stdout"], outputs[" ".join(args) + " stderr"] = p.stdout, p.stderr

        # the run really exercised what it should
        toks = sim.requests(kind="token")
        check(len(toks) >= 5, f"only {len(toks)} token requests")
        check(any(t["result"] == "fault" for t in toks), "no invalid_grant was answered")
        check(len(refresh_tokens) >= 4, f"refresh tokens seen: {len(refresh_tokens)}")
        deliveries = receiver.attempts()
        check(deliveries and all(a["signature_ok"] for a in deliveries), "webhooks are signed with the secret")
        check(all(a["headers"].get("Authorization") == f"Bearer {bearer}" for a in deliveries),
              "the bearer header reaches the receiver")
        for path in ("/hook", teams_path, slack_path):
            check(any(a["path"] == path for a in deliveries), f"deliveries to {path[:40]}…")

        found = []
        for where, text in outputs.items():
            for name, value in (("client secret", client_secret), ("webhook secret", webhook_secret),
                                ("bearer header value", bearer), ("Teams sig", teams_sig),
                                ("Slack URL token", slack_token)):
                if value in text:
                    found.append(f"{name} in {where}")
            for rt in refresh_tokens:
                if rt and rt in text:
                    found.append(f"refresh token {rt[:12]}… in {where}")
            for pattern, name in ((ACCESS_TOKEN, "access token"), (ROTATED_REFRESH_TOKEN, "rotated refresh token")):
                for m in pattern.finditer(text):
                    found.append(f"{name} {m.group(0)[:8]}… in {where}")
        check(not found, "secrets in the output:\n" + "\n".join(found))
    finally:
        if d and d.proc.poll() is None:
            d.stop(signal.SIGKILL)
        receiver.stop()
        sim.stop()
        env.cleanup()


def test_secret_file_modes():
    env = Env("secret-modes")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        hook = f"\n[webhook]\nurl-file = {env.dir}/webhook-url\nsecret-file = {env.dir}/webhook-secret\n"
        cfg = env.config(sim, [("c1", "o1")], extra=hook)
        files = {"client-secret": 0o644, "refresh-token": 0o640, "webhook-secret": 0o604, "webhook-url": 0o644}
        env.write("webhook-secret", "whsec_" + "c2VjcmV0LWtleQ==" + "\n", 0o600)
        env.write("webhook-url", "http://127.0.0.1:9/hook\n", 0o600)
        for name, mode in files.items():
            os.chmod(os.path.join(env.dir, name), mode)
        p = run(["-c", cfg, "check-config"])
        check(p.returncode == 0, f"check-config: {p.returncode} {p.stderr}")
        for name in files:
            line = f"provwatch: warning: {env.dir}/{name} is accessible by other users; secrets should be mode 0600"
            check(line in p.stderr, f"no warning for {name}: {p.stderr!r}")
        check(p.stdout and "accessible" not in p.stdout, "warnings go to stderr, not stdout")
        rc, _, err = run_once(cfg)
        check(f"{env.dir}/client-secret is accessible by other users" in err, f"once warns too: {err}")
        for name in files:
            os.chmod(os.path.join(env.dir, name), 0o600)
        p = run(["-c", cfg, "check-config"])
        check(p.returncode == 0 and "accessible" not in p.stderr, f"0600 draws a warning: {p.stderr!r}")
    finally:
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    main([test_no_secret_in_any_output, test_secret_file_modes])
