"""From a cohort to model-ready tensors: intensity handling, resampling, time-point alignment,
mask-guided ROI crops, representative slices, augmentation and the disk cache."""

from hccprog.preprocessing.cache import PreprocessedCohort, preprocess_cohort
from hccprog.preprocessing.slices import SliceConfig, StreamSpec, patient_slices

__all__ = ["PreprocessedCohort", "SliceConfig", "StreamSpec", "patient_slices", "preprocess_cohort"]
