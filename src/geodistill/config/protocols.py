"""The field's evaluation protocols: a fixed share of every class for training, the rest for test.

Remote-sensing scene papers train on a ratio r of each class's images and test on all the
others, repeated over random splits (mean ± sd over, usually, 5 or 10 of them). A named
protocol is a dataset and its ratio: ``data.protocol: aid-20`` means AID with r = 0.2
(`data.splits.ratio_split` draws it, with a validation part carved out of the training part).
"""

from __future__ import annotations

from dataclasses import dataclass

from geodistill.core.errors import GeodistillError


@dataclass(frozen=True)
class Protocol:
    """A dataset, the share of each class it trains on, and where the protocol comes from."""

    name: str
    dataset: str
    train_ratio: float
    source: str


_SOURCES = {
    "aid": "Xia et al., 'AID: A Benchmark Data Set for Performance Evaluation of Aerial Scene Classification', 2017",
    "ucmerced": "Yang & Newsam, 'Bag-of-visual-words and spatial extensions for land-use classification', 2010",
    "nwpu-resisc45": "Cheng et al., 'Remote Sensing Image Scene Classification: Benchmark and State of the Art', 2017",
    "rsscn7": "Zou et al., 'Deep Learning Based Feature Selection for Remote Sensing Scene Classification', 2015",
    "eurosat": "Helber et al., 'EuroSAT: A Novel Dataset and Deep Learning Benchmark for Land Use and Land "
    "Cover Classification', 2019",
}
_TABLE = (
    ("aid-20", "aid", 0.2),
    ("aid-50", "aid", 0.5),
    ("ucm-50", "ucmerced", 0.5),
    ("ucm-80", "ucmerced", 0.8),
    ("nwpu-10", "nwpu-resisc45", 0.1),
    ("nwpu-20", "nwpu-resisc45", 0.2),
    ("rsscn7-20", "rsscn7", 0.2),
    ("rsscn7-50", "rsscn7", 0.5),
    ("eurosat-20", "eurosat", 0.2),
    ("eurosat-80", "eurosat", 0.8),
    ("eurosat-ms-80", "eurosat-ms", 0.8),
)
PROTOCOLS: dict[str, Protocol] = {
    name: Protocol(name, ds, r, _SOURCES[ds.removesuffix("-ms")]) for name, ds, r in _TABLE
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``, or one sentence listing the names."""
    if name not in PROTOCOLS:
        raise GeodistillError(f"Protocol {name!r} is unknown; choose one of {', '.join(PROTOCOLS)}.")
    return PROTOCOLS[name]
