"""Human triplet-judgment campaigns served by PerFace itself (``perface annotate``).

A small web app (Starlette on uvicorn, extra ``perface[annotate]``) shows each annotator an anchor face and two
candidates and records which candidate looks more like the anchor, in an SQLite database that loses no
acknowledged answer; ``status`` reports progress and annotator quality, ``export`` writes the canonical
judgments format that ``perface triplets aggregate`` and training read. Typical use::

    from perface.campaign import CampaignConfig, serve, campaign_status, export_judgments
    cfg = CampaignConfig(tasks="tasks.csv", root="/data", db="campaign.sqlite", judgments_per_triplet=3)
    serve(cfg, port=8000)                       # blocks; http://127.0.0.1:8000/?annotator=ID
    campaign_status("campaign.sqlite")          # progress, per-annotator catch/gold accuracy, flags
    export_judgments("campaign.sqlite", "judgments.csv")   # + judgments_catch.csv

``create_app(cfg)`` returns the ASGI app to run under any ASGI server.
"""

from __future__ import annotations

from perface.campaign.app import Campaign, create_app, prepare, serve
from perface.campaign.config import CampaignConfig
from perface.campaign.report import campaign_status, export_judgments, judgment_tables
from perface.campaign.store import CampaignStore, completion_code
from perface.campaign.tasks import BadRow, TaskSet, load_tasks

__all__ = [
    "BadRow", "Campaign", "CampaignConfig", "CampaignStore", "TaskSet", "campaign_status", "completion_code",
    "create_app", "export_judgments", "judgment_tables", "load_tasks", "prepare", "serve",
]
