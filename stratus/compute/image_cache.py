"""Image pre-caching on this host (Nova's ``cache_images``, for ``POST /os-aggregates/{id}/images``): each image
fetched into the driver's image cache before any server boots from it, so the first boot of many on a host
does not wait for a download.

One image after another; a failure is that image's result (``error``) and the next is still tried. The answer,
image id → ``cached`` (fetched now), ``existing`` (the cache had it), ``unsupported`` (the driver keeps no
cache) or ``error``, is what the conductor adds up and logs.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.compute.host import ComputeHost

LOG = logging.getLogger(__name__)

CACHED, EXISTING, UNSUPPORTED, ERROR = "cached", "existing", "unsupported", "error"


async def cache_images(host: ComputeHost, context: dict[str, Any], image_ids: list[str]) -> dict[str, str]:
    """Fetch each of ``image_ids`` into this host's image cache (an RPC call); returns each image's result."""
    results: dict[str, str] = {}
    for image_id in image_ids:
        try:
            results[image_id] = CACHED if await host.driver.cache_image(context, image_id) else EXISTING
        except NotImplementedError:
            LOG.warning("the virt driver of %s does not cache images; not caching %s", host.host, image_id)
            results[image_id] = UNSUPPORTED
        except Exception as exc:
            LOG.error("pre-caching image %s on %s failed: %s", image_id, host.host, exc)
            results[image_id] = ERROR
        else:
            LOG.info("image %s pre-cached on %s: %s", image_id, host.host, results[image_id])
    return results
