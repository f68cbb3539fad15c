"""A report fetcher: list the published reports, download each format, and poll cheaply with
If-None-Match."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

from .conftest import operation

FETCHER_SCOPES = ["campaigns:read", "reports:read"]


def ensure_a_report(admin: Any) -> None:
    """The demo publishes SIPAS 2019 with its report; on a branch whose demo does not yet, the
    admin publishes it again (a published campaign takes a new version)."""
    from sipas_client.api.campaigns import campaigns_list
    from sipas_client.api.reports import reports_list, reports_publish
    from sipas_client.models import CampaignPage, CampaignState, PublishRequest, ReportPage

    page = campaigns_list.sync(client=admin, state=CampaignState.PUBLISHED)
    assert isinstance(page, CampaignPage)
    campaign = next(c for c in page.items if c.code == "TQ-SIPAS-2019")
    listed = reports_list.sync(campaign.id, client=admin)
    assert isinstance(listed, ReportPage)
    if not listed.items:
        published = reports_publish.sync_detailed(
            campaign.id, client=admin, body=PublishRequest(reason="client scenario")
        )
        assert published.status_code == 201, published.content


def test_list_download_and_poll_reports(api: Any, base_url: str, admin: Any, machine: Any) -> None:
    from sipas_client.api.campaigns import campaigns_list
    from sipas_client.api.reports import (
        reports_export_csv,
        reports_export_xlsx,
        reports_get,
        reports_latest,
        reports_list,
    )
    from sipas_client.models import CampaignPage, CampaignState, ReportDocument, ReportPage

    ensure_a_report(admin)
    fetcher = machine("Report fetcher", FETCHER_SCOPES)

    page = campaigns_list.sync(client=fetcher, state=CampaignState.PUBLISHED)
    assert isinstance(page, CampaignPage)
    reports = []
    for campaign in page.items:
        listed = reports_list.sync(campaign.id, client=fetcher)
        assert isinstance(listed, ReportPage)
        reports += listed.items
    assert reports, "the demo has a published report"
    across = operation(base_url, "get", "/api/v1/reports")
    if across is not None:  # the list across campaigns, where the app has it
        everything = across.sync(client=fetcher)
        assert {r.id for r in reports} <= {r.id for r in everything.items}
    summary = reports[-1]

    latest = reports_latest.sync_detailed(summary.campaign_id, client=fetcher)
    assert latest.status_code == 200
    document = reports_get.sync_detailed(summary.id, client=fetcher)
    assert document.status_code == 200
    report = document.parsed
    assert isinstance(report, ReportDocument)
    assert report.forms_counted > 0
    assert report.total.index is not None
    assert report.breakdowns.additional_properties["agency"]

    as_csv = reports_export_csv.sync_detailed(summary.id, client=fetcher)
    assert as_csv.status_code == 200
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert len(rows) > 10
    as_xlsx = reports_export_xlsx.sync_detailed(summary.id, client=fetcher)
    assert as_xlsx.status_code == 200
    assert zipfile.is_zipfile(io.BytesIO(as_xlsx.content))

    for fetch, answer in (
        (reports_get, document),
        (reports_export_csv, as_csv),
        (reports_export_xlsx, as_xlsx),
    ):
        etag = answer.headers["etag"]
        repeat = fetch.sync_detailed(summary.id, client=fetcher, if_none_match=etag)
        assert repeat.status_code == 304, fetch.__name__
        assert repeat.content == b""
    repeat = reports_latest.sync_detailed(
        summary.campaign_id, client=fetcher, if_none_match=latest.headers["etag"]
    )
    assert repeat.status_code == 304
