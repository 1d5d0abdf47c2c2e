"""Placeholder for the embedded image store."""

from __future__ import annotations

from typing import Any


class ImageStore:
    def __init__(self, conf: Any, db: Any) -> None:
        self.conf = conf
        self.db = db


def client_for(conf: Any, store: ImageStore) -> Any:
    return None
