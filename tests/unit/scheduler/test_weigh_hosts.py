"""``weigh_hosts``: each weigher's values scaled to 0..1 over the candidates (or its fixed bounds), all-equal
values to 0, times its multiplier, summed; weighers with a zero multiplier or nothing to say for the request are
left out, and the ones that only judge host by host are asked so."""

from __future__ import annotations

from typing import Any

import numpy as np

from stratus.scheduler.weighers.base import BaseHostWeigher, weigh_hosts


class _Fixed(BaseHostWeigher):
    def __init__(self, values: list[float], multiplier: float, vector: bool = True, runs: bool = True,
                 minval: float | None = None, maxval: float | None = None) -> None:
        self.values = np.array(values, dtype=np.float64)
        self.multiplier = multiplier
        self.vector = vector
        self.runs = runs
        self.minval = minval
        self.maxval = maxval

    def weight_multiplier(self) -> float:
        return self.multiplier

    def run_for_request(self, request: Any) -> bool:
        return self.runs

    def host_weight(self, host_state: Any, request: Any) -> float:
        return float(self.values[host_state])

    def weights(self, hosts: Any, candidates: np.ndarray, request: Any) -> np.ndarray | None:
        return self.values[candidates] if self.vector else None


class _Hosts:
    hosts = list(range(5))  # a weigher asked host by host gets the host's index as its "state"


def test_weights_are_scaled_multiplied_and_summed() -> None:
    candidates = np.array([0, 2, 3, 4])
    weighers = [
        _Fixed([10, 0, 30, 20, 40], 1.0),  # 10 30 20 40 -> 0 2/3 1/3 1
        _Fixed([1, 1, 1, 1, 1], 5.0),  # all equal: 0
        _Fixed([4, 0, 3, 2, 1], -2.0, vector=False),  # host by host: 4 3 2 1 -> 1 2/3 1/3 0, times -2
        _Fixed([0, 0, 5, 0, 10], 1.0, minval=0.0, maxval=20.0),  # fixed bounds: 0 .25 0 .5
        _Fixed([9, 9, 0, 9, 9], 0.0),  # no multiplier: left out
        _Fixed([0, 0, 100, 0, 0], 3.0, runs=False),  # nothing to say for this request
    ]
    total = weigh_hosts(weighers, _Hosts(), candidates, None)  # type: ignore[arg-type]
    assert np.allclose(total, [0 - 2.0, 2 / 3 - 4 / 3 + 0.25, 1 / 3 - 2 / 3, 1 + 0 + 0.5])
    # identical hosts weigh exactly the same (the ranking breaks such ties by host order)
    same = weigh_hosts([_Fixed([3, 3, 7, 3, 1], 1.0), _Fixed([2, 2, 0, 2, 5], 0.7)], _Hosts(),
                       np.array([0, 1, 3, 2, 4]), None)  # type: ignore[arg-type]
    assert same[0] == same[1] == same[2]


def test_no_weigher_or_no_candidate_weighs_zero() -> None:
    assert weigh_hosts([], _Hosts(), np.array([1, 2]), None).tolist() == [0.0, 0.0]  # type: ignore[arg-type]
    assert weigh_hosts([_Fixed([1, 2, 3, 4, 5], 1.0)], _Hosts(), np.array([], dtype=np.int64),
                       None).size == 0  # type: ignore[arg-type]
