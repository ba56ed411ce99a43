"""The what-if page in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium).

One walk through the page, a screenshot after each step (tests/web/screenshots/, git-ignored): load
bank-rollout, change the budget, solve and see the CLI's capex, download the plan workbook and open
it, solve a second variant and see both side by side, download the comparison workbook and the
edited YAML, and see an invalid field's message beside it. A second walk edits business volumes and
a length mix in the form (figures in its comments) and sees a pasted lengths_file refused. Skipped
where no browser is installed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from optimizer.loaders import load_scenario
from tests.conftest import REPO, run_cli
from tests.web.conftest import SCREENSHOTS, Server, chromium_paths

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PATHS = chromium_paths()
pytestmark = pytest.mark.skipif(PATHS is None, reason="no headless browser: install Debian's chromium and "
                                "chromium-driver (apt-get install chromium chromium-driver; .ci/run does)")
BANK = REPO / "scenarios" / "bank-rollout.yaml"


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[Any]:
    assert PATHS is not None
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    opts = webdriver.ChromeOptions()
    opts.binary_location = PATHS[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,2400", "--no-first-run", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update", "--lang=en-US"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False,
                                           "safebrowsing.enabled": False})
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=PATHS[1]))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def wait(driver: Any, cond: Callable[[Any], Any], timeout: float = 30, what: str = "") -> Any:
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond, what)
    except Exception:
        shot(driver, "failed")
        raise


def shot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def typed(driver: Any, field: str, text: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, f'input[data-field="{field}"]')
    box.clear()
    box.send_keys(text)


def solve_and_wait(driver: Any, variants_before: int) -> None:
    driver.find_element(By.ID, "variant-name").clear()
    driver.find_element(By.ID, "solve").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#variants-table th[data-variant]")) > variants_before,
         what="the solve to finish")
    wait(driver, lambda d: d.find_element(By.ID, "progress").get_attribute("hidden") is not None)


def downloaded(folder: Path, suffix: str, before: set[str], timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [p for p in folder.iterdir() if p.name not in before and p.suffix == suffix]
        if new and not any(p.suffix == ".crdownload" for p in folder.iterdir()):
            return new[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} file downloaded into {folder}: {sorted(os.listdir(folder))}")


def cli_capex(*options: str) -> float:
    res = run_cli("solve", str(BANK), "--format", "json", "--no-workbook", *options)
    assert res.exit_code == 0, res.output
    return float(json.loads(res.stdout)["capex"])


def test_what_if_walk_through(server: Server, browser: Any, downloads: Path) -> None:
    d = browser
    d.get(server.url + "/")
    wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", what="page start")
    loads = d.find_element(By.TAG_NAME, "body").get_attribute("data-loads")
    Select(d.find_element(By.ID, "scenario-select")).select_by_value("bank-rollout.yaml")
    d.find_element(By.ID, "load-scenario").click()
    wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loads") != loads, what="the load")
    assert d.find_element(By.CSS_SELECTOR, 'input[data-field="constraints.budget"]').get_attribute("value") == "6000000"
    assert "from bank-rollout.yaml" in d.find_element(By.ID, "source-line").text
    shot(d, "01-loaded")

    # 1: a budget change, solved; the capex shown is the CLI's for the same budget
    typed(d, "constraints.budget", "3000000")
    d.find_element(By.ID, "variant-name").send_keys("budget 3M")
    d.find_element(By.ID, "solve").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#variants-table th[data-variant]"), what="first solve")
    card = d.find_element(By.CSS_SELECTOR, '#plan-cards [data-key="capex"]')
    expected = cli_capex("--budget", "3000000")
    assert float(card.get_attribute("data-value")) == pytest.approx(expected, abs=0.005)
    assert f"{expected:,.0f}" in card.text
    assert "budget $3,000,000" in card.text
    assert d.find_element(By.CSS_SELECTOR, "#cost-chart svg rect") is not None
    assert len(d.find_elements(By.CSS_SELECTOR, "#bought tbody tr")) >= 1
    assert len(d.find_elements(By.CSS_SELECTOR, "#coverage tbody tr")) == 5
    shot(d, "02-solved-budget-3M")

    # the plan workbook downloads and opens
    before = set(os.listdir(downloads))
    d.find_element(By.ID, "download-plan").click()
    book = downloaded(downloads, ".xlsx", before)
    wb = load_workbook(book)
    assert len(wb.sheetnames) > 1
    assert book.name == "bank-rollout-budget-3M.xlsx"

    # 2: a second variant; both side by side in the table and the chart
    typed(d, "constraints.budget", "1500000")
    Select(d.find_element(By.CSS_SELECTOR, 'select[data-field="objective"]')).select_by_value("coverage")
    solve_and_wait(d, 1)
    heads = [h.text for h in d.find_elements(By.CSS_SELECTOR, "#variants-table th[data-variant]")]
    assert len(heads) == 2 and heads[0] == "1. budget 3M"
    assert heads[1] == "2. budget 1,500,000; objective coverage", heads
    assert len(d.find_elements(By.CSS_SELECTOR, "#served-chart svg circle")) == 2
    rows = {r.find_element(By.TAG_NAME, "th").text: [c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in d.find_elements(By.CSS_SELECTOR, "#variants-table tbody tr")}
    assert rows["Budget"] == ["$3,000,000", "$1,500,000"]
    assert rows["Capex"][0] == f"${expected:,.0f}"
    served = float(rows["Served demand"][1].rstrip("%"))
    assert 0 < served < 100
    d.execute_script("document.querySelector('.variants').scrollIntoView()")
    shot(d, "03-two-variants")

    # the comparison workbook and the edited YAML download; the YAML is the edited scenario
    before = set(os.listdir(downloads))
    d.find_element(By.ID, "download-compare").click()
    wb = load_workbook(downloaded(downloads, ".xlsx", before))
    assert "Comparison" in wb.sheetnames
    before = set(os.listdir(downloads))
    d.find_element(By.ID, "download-yaml").click()
    edited = load_scenario(downloaded(downloads, ".yaml", before))
    assert edited.scenario.constraints.budget == 1_500_000 and edited.scenario.objective == "coverage"

    # 3: an invalid field shows the CLI's message beside it, and the solve is refused with it
    d.execute_script("window.scrollTo(0, 0)")
    typed(d, "workloads[0].slo.tpot_ms", "0")
    field = 'input[data-field="workloads[0].slo.tpot_ms"]'
    wait(d, lambda d: "Input should be greater than 0" in d.find_element(By.CSS_SELECTOR, field)
         .find_element(By.XPATH, "..").text, what="the field's message")
    wrapper = d.find_element(By.CSS_SELECTOR, field).find_element(By.XPATH, "..")
    assert "invalid" in wrapper.get_attribute("class")
    assert "workloads[0].slo.tpot_ms: Input should be greater than 0" in d.find_element(By.ID, "form-error").text
    d.find_element(By.ID, "solve").click()
    wait(d, lambda d: d.find_element(By.ID, "progress").get_attribute("hidden") is not None)
    assert len(d.find_elements(By.CSS_SELECTOR, "#variants-table th[data-variant]")) == 2
    shot(d, "04-invalid-field")
    logs = [e for e in d.get_log("browser") if e.get("level") == "SEVERE" and "/api/" not in e.get("message", "")]
    assert not logs, logs


def paste(driver: Any, data: dict[str, Any]) -> None:
    loads = driver.find_element(By.TAG_NAME, "body").get_attribute("data-loads")
    driver.find_element(By.ID, "paste-open").click()
    driver.execute_script("document.getElementById('yaml-text').value = arguments[0]", json.dumps(data))
    driver.find_element(By.ID, "paste-load").click()
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loads") != loads, what="the paste")


def text_of(driver: Any, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return " ".join(f.text for f in found)


def field_box(driver: Any, field: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'[data-field="{field}"]').find_element(By.XPATH, "..")


def test_demand_and_length_mix_in_the_form(server: Server, browser: Any, downloads: Path) -> None:
    from tests.conftest import BASE_SCENARIO

    d = browser
    d.get(server.url + "/")
    wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", what="page start")
    data = json.loads(json.dumps(BASE_SCENARIO))
    # measured at TTFT 3,000 ms, looser than the chat's 2,000 ms: no candidate uses it
    data["measured"] = [{"model": "Qwen/Qwen2-7B-Instruct", "gpu": "L20-48GB", "tp": 1, "precision": "bf16",
                         "input_tokens": 1000, "output_tokens": 200, "requests_per_s": 6.0,
                         "slo": {"ttft_ms": 3000, "tpot_ms": 60}, "source": "looser bench"}]
    paste(d, data)
    wait(d, lambda d: "warning: measured entry 1 (looser bench) matches no candidate deployment"
         in text_of(d, "#inputs li.warn"), what="the unused-measured warning")

    # business volumes: switching keeps the rate (1.5 req/s x 3,600 = 5,400 users x 10 req/day x 10 %)
    Select(d.find_element(By.CSS_SELECTOR, 'select[data-field="workloads[0].demand"]')).select_by_value("users")
    assert d.find_element(By.CSS_SELECTOR, 'input[data-field="workloads[0].demand.users"]').get_attribute("value") \
        == "5400"
    assert not d.find_elements(By.CSS_SELECTOR, 'input[data-field="workloads[0].requests_per_s"]')
    typed(d, "workloads[0].demand.users", "2000")
    typed(d, "workloads[0].demand.requests_per_user_per_day", "20")
    typed(d, "workloads[0].demand.peak_hour_share", "0.135")
    line = "peak rate chat: 2,000 users × 20 req/day × 13.5 % in the peak hour = 1.50 req/s"  # 5,400 / 3,600
    wait(d, lambda d: d.find_element(By.ID, "derived-rate-0").text == line, what="the derived peak rate")
    assert line in text_of(d, "#inputs li.rate")

    # a length mix: the one length becomes the first bucket; a new bucket splits the last (twice its
    # lengths, half its share each); a cell that is not a number gets the message beside it
    Select(d.find_element(By.ID, "f-workloads-0-lengths-form")).select_by_value("mix")
    cell = 'workloads[0].lengths[{}].{}'

    def cells() -> list[list[str]]:
        return [[d.find_element(By.CSS_SELECTOR, f'input[data-field="{cell.format(j, k)}"]').get_attribute("value")
                 for k in ("input_tokens", "output_tokens", "share")]
                for j in range(len(d.find_elements(By.CSS_SELECTOR, "table.buckets tbody tr")))]

    assert cells() == [["1000", "200", "1"]]
    d.find_element(By.ID, "f-workloads-0-lengths-add").click()
    assert cells() == [["1000", "200", "0.5"], ["2000", "400", "0.5"]]
    typed(d, cell.format(1, "input_tokens"), "lots")
    wait(d, lambda d: "give a number" in field_box(d, cell.format(1, "input_tokens")).text, what="the bad cell")
    for j, (i_tok, o_tok, share) in enumerate([("500", "100", "0.75"), ("2500", "500", "0.5")]):
        typed(d, cell.format(j, "input_tokens"), i_tok)
        typed(d, cell.format(j, "output_tokens"), o_tok)
        typed(d, cell.format(j, "share"), share)
    wait(d, lambda d: "lengths shares sum to 1.25; they must sum to 1" in d.find_element(By.ID, "form-error").text,
         what="the shares' message")
    typed(d, cell.format(1, "share"), "0.25")
    # 1.5 req/s x 0.75 = 1.125 and x 0.25 = 0.375
    wait(d, lambda d: [d.find_element(By.ID, f"derived-bucket-0-{j}").text for j in (0, 1)] == ["1.125", "0.375"],
         what="the buckets' rates")
    assert d.find_element(By.ID, "form-error").get_attribute("hidden") is not None
    assert "length mix of 2 buckets" in text_of(d, "#inputs li.mix")
    shot(d, "05-demand-and-mix")

    solve_and_wait(d, len(d.find_elements(By.CSS_SELECTOR, "#variants-table th[data-variant]")))
    assert d.find_element(By.ID, "routed").is_displayed()
    rows = [[c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in d.find_elements(By.CSS_SELECTOR, "#routed tbody tr")]
    routed: dict[str, float] = {}
    for r in rows:
        routed[r[4]] = routed.get(r[4], 0.0) + float(r[5])
    assert routed == pytest.approx({"500 → 100": 1.125, "2,500 → 500": 0.375}, abs=1e-3)
    cov = [c.text for c in d.find_elements(By.CSS_SELECTOR, "#coverage tbody tr td")]
    assert cov[:3] == ["chat", "inference", "1.5"]
    shot(d, "06-routed-buckets")

    # the edited scenario downloads as YAML the CLI reads: the volumes and the mix, no requests_per_s
    before = set(os.listdir(downloads))
    d.find_element(By.ID, "download-yaml").click()
    edited = load_scenario(downloaded(downloads, ".yaml", before)).scenario.workloads[0]
    assert edited.kind == "inference" and edited.requests_per_s == pytest.approx(1.5, rel=1e-12)
    assert edited.buckets() == [(500, 100, 0.75), (2500, 500, 0.25)]

    # a pasted lengths_file is refused beside its field; choosing a mix replaces it
    data = json.loads(json.dumps(BASE_SCENARIO))
    data["workloads"][0]["lengths_file"] = "/etc/passwd"
    paste(d, data)
    box = field_box(d, "workloads[0].lengths_file")
    assert "invalid" in box.get_attribute("class")
    assert "lengths_file is not read from a web request" in box.text and "root:" not in d.page_source
    Select(d.find_element(By.ID, "f-workloads-0-lengths-form")).select_by_value("mix")
    wait(d, lambda d: "length mix of 1 bucket —" in text_of(d, "#inputs li.mix"), what="the mix replacing the file")
    assert d.find_element(By.ID, "form-error").get_attribute("hidden") is not None
    shot(d, "07-lengths-file-refused")
    logs = [e for e in d.get_log("browser") if e.get("level") == "SEVERE" and "/api/" not in e.get("message", "")]
    assert not logs, logs
