"""The Moments tab in a real browser (``make test-ui``): headless Chromium, driven by Playwright, against the API
server of a real deployment (simple auth manager) that has run the example DAG.

Set ``UI_SCREENSHOT=<path>`` to save a picture of the tab there (``make ui-screenshot`` writes the docs' one).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deployment.deployment import Deployment

pytestmark = [pytest.mark.ui, pytest.mark.timeout(900)]

DAG_ID = "video_action_recognition"
#: tests/ui/dags/ui_sharded.py: the same videos parsed in shards, then combined.
SHARDED_DAG_ID = "ui_sharded"
#: The example's samples (see emulator/samples.py): moments planted in the kitchen video, one missing video.
KITCHEN = "gs://video-actions-demo/videos/kitchen.mp4"
MISSING = "gs://video-actions-demo/videos/missing.mp4"
CHROMIUM = "/usr/bin/chromium"
#: Generous: a busy 2-core machine renders the UI slowly.
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def runs(deployment: Deployment) -> dict[str, str]:
    """Finished runs of the example DAG and of the sharded one (one output line a file: several shards), run
    side by side: their parse and combine tasks wrote their moment digests."""
    deployment.wait_for_dags([DAG_ID, SHARDED_DAG_ID])
    deployment.control.knob("timeline", lines_per_file=1)
    started = {dag_id: deployment.trigger(dag_id) for dag_id in (DAG_ID, SHARDED_DAG_ID)}
    for dag_id, run in started.items():
        state = deployment.wait_for_run(dag_id, run)
        assert state == "success", deployment.task_states(dag_id, run)
    return started


@pytest.fixture(scope="module")
def run_id(runs: dict[str, str]) -> str:
    """The example DAG's run."""
    return runs[DAG_ID]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless (no browser download: ``executable_path``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser: Any, deployment: Deployment) -> Iterator[Any]:
    """A page logged in through the simple auth manager's form, as a user does."""
    context = browser.new_context(base_url=base_url(deployment), viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto("/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", deployment.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/auth/).*$"))  # back in the UI, off the login page
    yield page
    context.close()


def base_url(deployment: Deployment) -> str:
    return f"http://127.0.0.1:{deployment.port}"


def task_page(run_id: str, task_id: str, dag_id: str = DAG_ID) -> str:
    return f"/dags/{dag_id}/runs/{urllib.parse.quote(run_id)}/tasks/{task_id}"


def open_tab(page: Any, run_id: str, task_id: str, dag_id: str = DAG_ID) -> Any:
    """Open the task instance's page, click its Moments tab; the tab's frame."""
    from playwright.sync_api import expect

    page.goto(task_page(run_id, task_id, dag_id))
    tab = page.get_by_role("tab", name="Moments").or_(page.get_by_role("link", name="Moments")).first
    expect(tab).to_be_visible(timeout=WAIT_MS)
    tab.click()
    page.wait_for_url(re.compile(r"/plugin/video-actions-moments"))
    return page.frame_locator('iframe[title="Moments"]')


def test_the_tab_shows_a_videos_moments_filters_them_and_shows_an_errored_videos_reason(page, run_id):
    from playwright.sync_api import expect

    frame = open_tab(page, run_id, "parse_to_parquet")
    kitchen = frame.locator(f'section[data-video="{KITCHEN}"]')
    expect(kitchen).to_be_visible(timeout=WAIT_MS)
    marks = kitchen.locator(".timeline .moment")
    expect(marks).to_have_count(2)
    assert sorted(marks.nth(i).get_attribute("data-label") for i in range(2)) == ["clap", "wave"]
    starts = {marks.nth(i).get_attribute("data-label"): float(marks.nth(i).get_attribute("data-start")) for i in (0, 1)}
    assert starts == {"wave": pytest.approx(0.75), "clap": pytest.approx(2.5)}
    expect(kitchen.locator(".moment-row")).to_have_count(2)
    expect(kitchen.locator(".counts")).to_contain_text("clap: 1")
    expect(kitchen.locator("a.console")).to_have_attribute("href", re.compile(r"^https://console\.cloud\.google\.com/"))

    frame.locator("#label-filter").select_option("wave")
    expect(marks).to_have_count(1)
    expect(marks.first).to_have_attribute("data-label", "wave")
    expect(frame.locator(".moment-row")).to_have_count(1)  # every other video's moments are filtered out too
    frame.locator("#label-filter").select_option("")
    frame.locator("#confidence-filter").fill("0.8")
    expect(marks).to_have_count(1)  # clap (0.69) is below 0.8

    missing = frame.locator(f'section[data-video="{MISSING}"]')
    expect(missing.locator(".video-error")).to_contain_text(f"Video {MISSING} not found (code 5)")
    if path := os.environ.get("UI_SCREENSHOT"):
        frame.locator("#confidence-filter").fill("0")
        expect(marks).to_have_count(2)
        page.screenshot(path=path)


def test_the_tab_of_another_task_says_it_is_not_a_parse_task(page, run_id):
    from playwright.sync_api import expect

    frame = open_tab(page, run_id, "predict")
    expect(frame.locator("#status")).to_contain_text("Not a parse task", timeout=WAIT_MS)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["no login", "bad token"])
def test_without_a_valid_login_the_view_and_its_api_refuse(browser, deployment, run_id, headers):
    """A fresh browser context has no session cookie: the page and the digest are refused, nothing leaks."""
    context = browser.new_context(base_url=base_url(deployment), extra_http_headers=headers)
    try:
        query = urllib.parse.urlencode({"dag_id": DAG_ID, "run_id": run_id, "task_id": "parse_to_parquet"})
        api = f"/video-actions/api/moments/{DAG_ID}/{urllib.parse.quote(run_id)}/parse_to_parquet?map_index=-1"
        for path in (f"/video-actions/moments?{query}", api):
            answer = context.request.get(path)
            assert answer.status in (401, 403), (path, answer.status)
            assert "kitchen" not in answer.text()
    finally:
        context.close()


def test_a_logged_in_user_reads_a_parse_to_xcom_digest_through_the_api(page, run_id):
    """The parse returning its records in XCom keeps its digest in XCom: the API answers it (min_confidence 0.5)."""
    api = f"/video-actions/api/moments/{DAG_ID}/{urllib.parse.quote(run_id)}/parse_to_xcom?map_index=-1"
    answer = page.request.get(api)
    assert answer.status == 200, answer.text()
    videos = {video["video_uri"]: video for video in answer.json()["digest"]["videos"]}
    assert [moment[2] for moment in videos[KITCHEN]["moments"]] == ["wave", "clap"]
    assert videos[MISSING]["error_count"] == 1


def test_the_combine_of_a_sharded_parse_shows_the_shards_combined(page, runs, deployment):
    from playwright.sync_api import expect

    run = runs[SHARDED_DAG_ID]
    shards = len(deployment.mapped(SHARDED_DAG_ID, run, "parse"))
    assert shards >= 2, deployment.task_states(SHARDED_DAG_ID, run)
    frame = open_tab(page, run, "combine", SHARDED_DAG_ID)
    expect(frame.locator("#totals")).to_contain_text(f"combined from {shards} shards", timeout=WAIT_MS)
    kitchen = frame.locator(
        f'section[data-video="{KITCHEN.replace("video-actions-demo", "video-actions-deployment")}"]'
    )
    expect(kitchen.locator(".timeline .moment")).to_have_count(2)
    expect(frame.locator(".video-error")).to_contain_text("missing.mp4 not found (code 5)")
    one = page.request.get(
        f"/video-actions/api/moments/{SHARDED_DAG_ID}/{urllib.parse.quote(run)}/parse?map_index=0"
    ).json()
    assert one["digest"]["shards"] == 1 and one["digest"]["moments"] < 5  # a shard's own part
