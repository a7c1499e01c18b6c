"""From a cohort to model-ready tensors: intensity handling, resampling, time-point alignment,
mask-guided ROI crops, representative slices, masked 3D volumes, augmentation and the disk cache."""

from hccprog.preprocessing.cache import PreprocessedCohort, preprocess_cohort
from hccprog.preprocessing.slices import SliceConfig, StreamSpec, patient_slices
from hccprog.preprocessing.volumes import VolumeConfig, patient_volumes

__all__ = ["PreprocessedCohort", "SliceConfig", "StreamSpec", "VolumeConfig", "patient_slices", "patient_volumes",
           "preprocess_cohort"]
