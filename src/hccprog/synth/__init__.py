"""Synthetic HCC-TACE cohorts with known ground truth (``hccprog synth``)."""

from hccprog.synth.generate import SynthConfig, draw_patient, synthesize, tree_digest

__all__ = ["SynthConfig", "draw_patient", "synthesize", "tree_digest"]
