"""Load the driver ``[DEFAULT] compute_driver`` names, e.g. ``fake.FakeDriver``."""

from __future__ import annotations

import importlib

from oslo_config import cfg

from stratus.image.client import ImageClient
from stratus.virt import timing
from stratus.virt.driver import ComputeDriver


def load_driver(conf: cfg.ConfigOpts, host: str, images: ImageClient | None = None) -> ComputeDriver:
    module_name, _, class_name = conf.compute_driver.rpartition(".")
    if not module_name:
        raise ValueError(f"compute_driver {conf.compute_driver!r} must be module.Class, e.g. fake.FakeDriver")
    module = importlib.import_module(f"stratus.virt.{module_name}")
    driver_cls = getattr(module, class_name)
    driver = driver_cls(conf, host)
    if not isinstance(driver, ComputeDriver):
        raise TypeError(f"{conf.compute_driver} is not a ComputeDriver")
    driver.images = images
    timing.instrument(driver, host)
    return driver
