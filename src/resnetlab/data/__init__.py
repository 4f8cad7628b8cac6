"""Data sets by name and the fast in-memory loader."""

from .datasets import (
    DATASETS,
    ENV_VAR,
    ArrayDataset,
    DataSplits,
    load_dataset,
    read_idx,
    safe_unpickle,
    search_dirs,
)
from .loader import AugmentConfig, InMemoryLoader, augment_batch, build_folder_loader, epoch_seed

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "ArrayDataset",
    "AugmentConfig",
    "DataSplits",
    "InMemoryLoader",
    "augment_batch",
    "build_folder_loader",
    "epoch_seed",
    "load_dataset",
    "read_idx",
    "safe_unpickle",
    "search_dirs",
]
