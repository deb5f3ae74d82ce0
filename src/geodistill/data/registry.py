"""Dataset registry: what each named dataset is, where it lives on disk and how to get it.

Every real dataset here is laid out as one sub-folder of images per class; a spec says which
classes to expect, which sub-path below the user's ``root`` usually holds the class folders
(the layout the official archive or torchgeo/torchvision unpacks to), its native image size and
band count, and either a downloader (torchgeo/torchvision, imported lazily behind an optional
extra) or a sentence saying where to get it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from geodistill.core.errors import GeodistillError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif")


@dataclass(frozen=True)
class DatasetSpec:
    """Facts about one named dataset.

    ``classes`` is the canonical class order (label i is ``classes[i]``); ``None`` means the
    classes are the sub-folders found on disk (``folder``) or are built in (``synthetic``).
    ``subdirs`` are candidate paths below ``root`` holding the class folders, tried in order
    after ``root`` itself. ``aliases`` maps an on-disk folder name to its class name.
    """

    name: str
    title: str
    classes: tuple[str, ...] | None
    native_size: int | None
    channels: int | None
    layout: str
    source: str
    subdirs: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    rgb_bands: tuple[int, int, int] = (0, 1, 2)
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    downloader: Callable[[Path], None] | None = None
    download_via: str = ""
    needs_root: bool = True

    @property
    def num_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def where_to_get(self, root: Path | None) -> str:
        """One sentence telling the user how to obtain the data and lay it out under ``root``."""
        how = (
            f"download it with 'geodistill data download {self.name} --root DIR' "
            f"(uses {self.download_via}) or get it from {self.source}"
            if self.downloader is not None
            else f"get it from {self.source}"
        )
        lay = f"{how} and lay it out as {self.layout}"
        if root is None:
            return f"Dataset '{self.name}' needs --root DIR, the folder that holds it: {lay}."
        return f"Dataset '{self.name}' was not found at '{root}': {lay}."


def _import_optional(module: str, extra: str):
    """Import ``module`` or raise a GeodistillError naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise GeodistillError(
            f"Downloading needs the optional package '{module.split('.')[0]}': "
            f"run pip install 'geodistill[{extra}]' and try again ({exc})."
        ) from None


def _torchgeo_download(class_name: str, **kwargs) -> Callable[[Path], None]:
    def download(root: Path) -> None:
        datasets = _import_optional("torchgeo.datasets", "torchgeo")
        getattr(datasets, class_name)(root=str(root), download=True, **kwargs)

    return download


def _torchvision_eurosat(root: Path) -> None:
    datasets = _import_optional("torchvision.datasets", "all")
    datasets.EuroSAT(root=str(root), download=True)


EUROSAT_CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip

_VIA_TORCHGEO = "torchgeo: pip install 'geodistill[torchgeo]'"
_SPECS: dict[str, DatasetSpec] = {}


def _register(spec: DatasetSpec) -> None:
    _SPECS[spec.name] = spec


_register(DatasetSpec(
    name="ucmerced",
    title="UC Merced Land Use (Yang & Newsam 2010)",
    classes=(
        "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
        "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
        "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
        "sparseresidential", "storagetanks", "tenniscourt",
    ),
    native_size=256, channels=3,
    layout="<root>/UCMerced_LandUse/Images/<class>/<class>NN.tif (2,100 RGB TIFFs, 100 per class)",
    source="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
    subdirs=("UCMerced_LandUse/Images", "Images"),
    downloader=_torchgeo_download("UCMerced"), download_via=_VIA_TORCHGEO,
))  # fmt: skip

_register(DatasetSpec(
    name="eurosat",
    title="EuroSAT RGB (Helber et al. 2019)",
    classes=EUROSAT_CLASSES,
    native_size=64, channels=3,
    layout="<root>/eurosat/2750/<Class>/<Class>_N.jpg (27,000 RGB JPEGs)",
    source="https://github.com/phelber/EuroSAT",
    subdirs=("eurosat/2750", "2750", "EuroSAT_RGB", "EuroSAT"),
    downloader=_torchvision_eurosat, download_via="torchvision",
))  # fmt: skip

_register(DatasetSpec(
    name="eurosat-ms",
    title="EuroSAT multispectral, 13 Sentinel-2 bands (Helber et al. 2019)",
    classes=EUROSAT_CLASSES,
    native_size=64, channels=13,
    layout=(
        "<root>/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_N.tif "
        "(27,000 13-band uint16 GeoTIFFs; needs pip install 'geodistill[geo]')"
    ),
    source="https://github.com/phelber/EuroSAT (EuroSATallBands.zip)",
    subdirs=("ds/images/remote_sensing/otherDatasets/sentinel_2/tif", "EuroSAT_MS", "tif"),
    rgb_bands=(3, 2, 1),  # B04, B03, B02 in the band order B01..B12, B8A
    extensions=(".tif", ".tiff"),
    downloader=_torchgeo_download("EuroSAT"), download_via=_VIA_TORCHGEO,
))  # fmt: skip

_register(DatasetSpec(
    name="aid",
    title="AID, Aerial Image Dataset (Xia et al. 2017)",
    classes=(
        "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church",
        "Commercial", "DenseResidential", "Desert", "Farmland", "Forest", "Industrial",
        "Meadow", "MediumResidential", "Mountain", "Park", "Parking", "Playground", "Pond",
        "Port", "RailwayStation", "Resort", "River", "School", "SparseResidential", "Square",
        "Stadium", "StorageTanks", "Viaduct",
    ),
    native_size=600, channels=3,
    layout="<root>/<Class>/<class>_N.jpg (10,000 RGB JPEGs in 30 class folders)",
    source="the AID project page http://www.captain-whu.com/project/AID/ (OneDrive or BaiduPan links)",
    subdirs=("AID",),
))  # fmt: skip

_register(DatasetSpec(
    name="nwpu-resisc45",
    title="NWPU-RESISC45 (Cheng et al. 2017)",
    classes=(
        "airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge",
        "chaparral", "church", "circular_farmland", "cloud", "commercial_area",
        "dense_residential", "desert", "forest", "freeway", "golf_course", "ground_track_field",
        "harbor", "industrial_area", "intersection", "island", "lake", "meadow",
        "medium_residential", "mobile_home_park", "mountain", "overpass", "palace",
        "parking_lot", "railway", "railway_station", "rectangular_farmland", "river",
        "roundabout", "runway", "sea_ice", "ship", "snowberg", "sparse_residential", "stadium",
        "storage_tank", "tennis_court", "terrace", "thermal_power_station", "wetland",
    ),
    native_size=256, channels=3,
    layout="<root>/NWPU-RESISC45/<class>/<class>_NNN.jpg (31,500 RGB JPEGs, 700 per class)",
    source="https://gcheng-nwpu.github.io/ (NWPU-RESISC45)",
    subdirs=("NWPU-RESISC45",),
    downloader=_torchgeo_download("RESISC45"), download_via=_VIA_TORCHGEO,
))  # fmt: skip

_register(DatasetSpec(
    name="rsscn7",
    title="RSSCN7 (Zou et al. 2015)",
    classes=("Field", "Forest", "Grass", "Industry", "Parking", "Resident", "RiverLake"),
    native_size=400, channels=3,
    layout="<root>/<aGrass|bField|cIndustry|dRiverLake|eForest|fResident|gParking>/*.jpg "
    "(2,800 RGB JPEGs, 400 per class; plain class names work too)",
    source="the RSSCN7 release of Zou et al. (IEEE GRSL 2015), mirrored on GitHub as RSSCN7",
    subdirs=("RSSCN7", "RSSCN7-master"),
    aliases={
        "aGrass": "Grass", "bField": "Field", "cIndustry": "Industry", "dRiverLake": "RiverLake",
        "eForest": "Forest", "fResident": "Resident", "gParking": "Parking",
    },
))  # fmt: skip

_register(DatasetSpec(
    name="patternnet",
    title="PatternNet (Zhou et al. 2018)",
    classes=(
        "airplane", "baseball_field", "basketball_court", "beach", "bridge", "cemetery",
        "chaparral", "christmas_tree_farm", "closed_road", "coastal_mansion", "crosswalk",
        "dense_residential", "ferry_terminal", "football_field", "forest", "freeway",
        "golf_course", "harbor", "intersection", "mobile_home_park", "nursing_home",
        "oil_gas_field", "oil_well", "overpass", "parking_lot", "parking_space", "railway",
        "river", "runway", "runway_marking", "shipping_yard", "solar_panel",
        "sparse_residential", "storage_tank", "swimming_pool", "tennis_court",
        "transformer_station", "wastewater_treatment_plant",
    ),
    native_size=256, channels=3,
    layout="<root>/PatternNet/images/<class>/*.jpg (30,400 RGB JPEGs, 800 per class)",
    source="https://sites.google.com/view/zhouwx/dataset",
    subdirs=("PatternNet/images", "images"),
    downloader=_torchgeo_download("PatternNet"), download_via=_VIA_TORCHGEO,
))  # fmt: skip

_register(DatasetSpec(
    name="folder",
    title="Any folder with one sub-folder of images per class",
    classes=None, native_size=None, channels=None,
    layout="<root>/<class>/<image>.jpg|png|tif (one sub-folder per class, at least 2 classes)",
    source="your own data",
))  # fmt: skip

_register(DatasetSpec(
    name="synthetic",
    title="Procedural land-use scenes (built in, no files)",
    classes=None, native_size=64, channels=3,
    layout="nothing: generated in memory from a seed",
    source="geodistill itself",
    needs_root=False,
))  # fmt: skip


def list_datasets() -> list[str]:
    """Names of every registered dataset, in registry order."""
    return list(_SPECS)


def get_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name`` (case-insensitive; ``_`` and ``-`` are the same)."""
    key = name.strip().lower().replace("_", "-")
    aliases = {"resisc45": "nwpu-resisc45", "uc-merced": "ucmerced", "eurosat-rgb": "eurosat"}
    key = aliases.get(key, key)
    if key not in _SPECS:
        raise GeodistillError(
            f"Unknown dataset '{name}': use one of {', '.join(_SPECS)} "
            "(or 'folder' with --root for your own class folders)."
        )
    return _SPECS[key]


def download(name: str, root: str | Path) -> Path:
    """Download dataset ``name`` into ``root`` (torchgeo/torchvision, optional extras)."""
    spec = get_spec(name)
    root = Path(root).expanduser()
    if not spec.needs_root:
        raise GeodistillError(
            f"Dataset '{spec.name}' is generated in memory, so there is nothing to download: "
            f"use --dataset {spec.name} (without --root)."
        )
    if spec.downloader is None:
        raise GeodistillError(
            f"Dataset '{spec.name}' has no stable download source: get it from {spec.source} "
            f"and lay it out as {spec.layout}."
        )
    root.mkdir(parents=True, exist_ok=True)
    spec.downloader(root)
    return root
