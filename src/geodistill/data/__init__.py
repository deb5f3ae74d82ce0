"""Data layer: dataset registry, ImageStore (decode once, cache, memory-map), splits, transforms.

ds = load_dataset("folder", "path/to/classes", size=64)   # uint8 N x C x 64 x 64
split = make_split(ds.labels, (0.6, 0.2, 0.2), seed=0)
data = prepare_data(cfg.data)   # the same, as training sees it: ImageSet + Split + Normalizer
x = transforms.apply_view(torch.from_numpy(ds.images[split.train[:32]]), views)
"""

from geodistill.data import transforms
from geodistill.data.imageset import ImageSet
from geodistill.data.info import data_info, format_info, preview
from geodistill.data.prepare import TrainData, checkpoint_data_config, prepare_data
from geodistill.data.registry import DatasetSpec, download, get_spec, list_datasets
from geodistill.data.splits import Split, make_split, split_from_files
from geodistill.data.store import default_cache_dir, image_cache_dir, load_dataset

__all__ = [
    "DatasetSpec",
    "ImageSet",
    "Split",
    "TrainData",
    "checkpoint_data_config",
    "data_info",
    "default_cache_dir",
    "download",
    "format_info",
    "get_spec",
    "image_cache_dir",
    "list_datasets",
    "load_dataset",
    "make_split",
    "prepare_data",
    "preview",
    "split_from_files",
    "transforms",
]
