"""Drives headless Chromium through the cockpit of a running `tradebus run --dashboard`.

Called by the Swift test TradeBusTests/CockpitBrowserTests with: the base URL, the viewer and operator
tokens, the path of the run's output (to learn when the replay ends), and where to put screenshots.
Prints one line per check; exits non-zero with the reason on the first that fails.
"""

import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, viewer, operator, output, shots = sys.argv[1:6]


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def api(path, token):
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def wait_for(what, condition, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    check(False, f"{what} within {seconds} s")


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"]:
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(30)


def sign_in(token):
    driver.get(base + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    wait_for("the overview after signing in", lambda: driver.find_elements(By.ID, "account"), 15)


def sign_out():
    driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait_for("the login page after signing out", lambda: driver.find_elements(By.ID, "token"), 15)


def post_form(action, fields):
    """Submits a form the page did not offer, as a forged or scripted request would."""
    driver.execute_script(
        """
        const form = document.createElement('form');
        form.method = 'post'; form.action = arguments[0];
        for (const [name, value] of Object.entries(arguments[1])) {
          const input = document.createElement('input');
          input.type = 'hidden'; input.name = name; input.value = value; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();
        """,
        action,
        fields,
    )
    wait_for("the answer to a posted form", lambda: driver.find_elements(By.ID, "control-result"), 15)
    return driver.find_element(By.ID, "control-result").text


try:
    # Signed out, a page sends the browser to the login and shows nothing of the account.
    driver.get(base + "/")
    check(driver.current_url.endswith("/login") and "XRPUSDT" not in driver.page_source,
          "signed out, the overview redirects to the login")

    # A first trade closes before anyone halts: its page is checked below.
    wait_for("a first closed trade", lambda: api("/api/v1/trades", viewer))

    # A viewer cannot halt: no control on the page, and a posted halt is refused.
    sign_in(viewer)
    check(not driver.find_elements(By.ID, "halt"), "a viewer's overview has no control")
    csrf = driver.find_element(By.CSS_SELECTOR, "input[name='csrf']").get_attribute("value")
    answer = post_form("/control/halt", {"csrf": csrf, "confirm": "yes"})
    check("operator" in answer, f"a viewer's halt is refused ({answer!r})")
    check(not api("/api/v1/status", operator)["status"]["control"].get("operatorHalt"), "the viewer's halt sent nothing")
    driver.get(base + "/")
    sign_out()

    # The operator: a POST without the CSRF token is refused; the Halt button, confirmed, halts.
    sign_in(operator)
    answer = post_form("/control/halt", {"confirm": "yes"})
    check("CSRF" in answer, f"a POST without the CSRF token is refused ({answer!r})")
    driver.get(base + "/")
    driver.find_element(By.ID, "halt").click()
    wait_for("the confirmation", lambda: driver.find_elements(By.ID, "confirm"), 15)
    driver.find_element(By.ID, "confirm").click()
    reply = wait_for("the executor's answer", lambda: driver.find_elements(By.ID, "reply"), 15)[0].text
    check(reply.startswith("Done"), f"the executor reports the halt ({reply!r})")
    status = api("/api/v1/status", operator)["status"]
    halt = status["control"].get("operatorHalt")
    check(status["mode"] == "halted" and halt and halt["by"].startswith("cockpit:operator"),
          "the executor's status: halted by the cockpit's operator")

    # The replay goes on; after it, every decision to enter made after the halt was refused for it.
    wait_for("the end of the replay", lambda: "the replay is done" in open(output).read(), 300)
    since = halt["since"]
    decisions = api("/api/v1/decisions?limit=5000", operator)
    later = [d for d in decisions if d["createdAt"] > since and d["action"] != "HOLD"]
    check(later, f"decisions to trade came after the halt ({len(later)})")
    # A halt stops entries only: a decision against the position opened before the halt closes it.
    entries = [d for d in later if d["outcome"]["status"] != "closing"]
    wrong = [(d["id"], d["action"], d["outcome"]) for d in entries
             if d["outcome"]["status"] != "refused" or d["outcome"].get("code") != "halted"]
    check(entries and not wrong, f"each entry was refused as halted ({len(entries)}; otherwise: {wrong[:3]})")
    ordered = [d for d in decisions if d.get("outcome", {}).get("status") == "ordered"]
    check(ordered and all(d["createdAt"] <= since for d in ordered), "no entry was ordered after the halt")

    # The overview draws the run's equity readings, with no console error.
    equity = api("/api/v1/equity", operator)
    driver.get_log("browser")  # what the refused posts above logged: only this page's count below
    driver.get(base + "/")
    chart = driver.find_element(By.ID, "equity-chart")
    points = int(chart.get_attribute("data-points"))
    drawn = len(chart.find_element(By.CSS_SELECTOR, "polyline.equity").get_attribute("points").split())
    check(points == len(equity) == drawn and points >= 2, f"the equity chart has the run's {len(equity)} points")
    check(driver.find_element(By.ID, "mode").text == "HALTED", "the overview shows the mode HALTED")
    queues = driver.find_element(By.ID, "queues").text
    check("ai-analyst.signals" in queues and "executor.default.decisions" in queues, "the overview counts the queues")
    time.sleep(1)
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    check(not errors, f"no console error on the overview ({errors})")
    driver.save_screenshot(f"{shots}/cockpit-overview.png")

    # A trade page shows its decision, its risk checks and its fills, on its price chart.
    driver.get(base + "/trades")
    driver.get_log("browser")
    driver.find_element(By.CSS_SELECTOR, "a.trade-link").click()
    wait_for("a trade page", lambda: driver.find_elements(By.ID, "decision"), 15)
    check(driver.find_element(By.ID, "reasoning").text.strip() != "", "the trade page shows the decision's reasoning")
    checks = driver.find_elements(By.CSS_SELECTOR, "tr.risk-check")
    check(len(checks) >= 10 and all("passed" in row.text for row in checks), f"{len(checks)} risk checks, passed")
    fills = driver.find_elements(By.CSS_SELECTOR, "tr.fill")
    check(len(fills) >= 2, f"the fills that opened and closed it ({len(fills)})")
    check(driver.find_elements(By.ID, "price-chart"), "the price chart")
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    check(not errors, f"no console error on the trade page ({errors})")
    driver.save_screenshot(f"{shots}/cockpit-trade.png")
finally:
    driver.quit()
print("all browser checks passed", flush=True)
