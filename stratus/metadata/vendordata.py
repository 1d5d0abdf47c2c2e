"""Vendor data: what the deployment tells every guest (vendor_data.json, vendor_data2.json).

Nova's ``StaticJSON`` provider (``JsonFileVendorData``): the JSON file ``[api] vendordata_jsonfile_path``, read
once by each service that serves it (the metadata API, and the compute hosts that build config drives); no file
configured is ``{}``. A file that cannot be read or parsed stops the service with the reason, where Nova fails
each request.
"""

from __future__ import annotations

import json
from typing import Any

from oslo_config import cfg


class VendorDataError(Exception):
    """``[api] vendordata_jsonfile_path`` names a file that cannot be used; the message says why."""


def load_static(conf: cfg.ConfigOpts) -> dict[str, Any]:
    providers = conf.api.vendordata_providers  # read first: a provider it does not offer is refused here
    path = conf.api.vendordata_jsonfile_path
    if not path or "StaticJSON" not in providers:
        return {}
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise VendorDataError(f"[api] vendordata_jsonfile_path {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise VendorDataError(f"[api] vendordata_jsonfile_path {path}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise VendorDataError(f"[api] vendordata_jsonfile_path {path}: not a JSON object")
    return data
