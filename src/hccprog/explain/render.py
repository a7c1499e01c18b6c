"""Pictures of explanations: saliency overlays on the model's input with the mask contours, and
bar charts of contributions."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hccprog.explain.geometry import LIVER_CHANNEL, TUMOR_CHANNEL

LIVER_COLOR, TUMOR_COLOR = "#4dd0e1", "#ffeb3b"


def _view(a: np.ndarray) -> np.ndarray:
    """A canonical (RAS) plane as radiologists look at it: anterior (or superior) up, the patient's
    right on the viewer's left."""
    return np.rot90(a)[:, ::-1]


def _panel(ax, image: np.ndarray, heat: np.ndarray | None, liver: np.ndarray | None, tumor: np.ndarray | None,
           title: str) -> None:
    """One image (grey), its saliency (jet, transparent where low) and the mask contours."""
    ax.imshow(_view(image), cmap="gray", vmin=0.0, vmax=1.0)
    if heat is not None and np.isfinite(heat).any():
        h = _view(np.nan_to_num(heat, nan=0.0))
        ax.imshow(h, cmap="jet", vmin=0.0, vmax=1.0, alpha=np.clip(h, 0, 1) * 0.55)
    for mask, color in ((liver, LIVER_COLOR), (tumor, TUMOR_COLOR)):
        if mask is not None and mask.max() > 0.5 and mask.min() < 0.5:
            ax.contour(_view(mask), levels=[0.5], colors=[color], linewidths=0.9)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def slice_overlays(x: np.ndarray, heat: np.ndarray, geometry: np.ndarray | None, *, timepoints: list[str],
                   streams: list[str], title: str) -> Figure:
    """2D models: a grid of the input slices (rows: time point x stream; columns: representative
    slices) with the saliency and the liver (cyan) and tumor (yellow) contours. ``x``, ``heat``
    (T, S, K, C, H, W); ``geometry`` (T, S, K, 6, H, W) or None. The first series is shown; the
    map is the mean over series where they differ. Rows the model does not read are left out."""
    t, s, k = x.shape[:3]
    rows = [(ti, si) for ti in range(t) for si in range(s) if np.isfinite(heat[ti, si]).any()]
    fig, axes = plt.subplots(len(rows), k, figsize=(1.9 * k + 0.6, 2.0 * len(rows) + 0.5), squeeze=False)
    for r, (ti, si) in enumerate(rows):
        for ki in range(k):
            h = np.nanmean(heat[ti, si, ki], axis=0) if np.isfinite(heat[ti, si, ki]).any() else None
            g = geometry[ti, si, ki] if geometry is not None else None
            _panel(axes[r, ki], np.asarray(x[ti, si, ki, 0], float), h,
                   None if g is None else g[LIVER_CHANNEL], None if g is None else g[TUMOR_CHANNEL],
                   f"{timepoints[ti] if ti < len(timepoints) else ti} / {streams[si] if si < len(streams) else si}"
                   f" / slice {ki + 1}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def volume_overlays(x: np.ndarray, heat: np.ndarray, geometry: np.ndarray | None, *, timepoints: list[str],
                    title: str) -> Figure:
    """3D models: three orthogonal planes through the tumor's centre (else the volume's) for every
    time point. ``x``, ``heat`` (T, C, D, H, W); ``geometry`` (T, 6, D, H, W) or None."""
    t = x.shape[0]
    fig, axes = plt.subplots(t, 3, figsize=(7.0, 2.4 * t + 0.5), squeeze=False)
    for ti in range(t):
        vol = np.asarray(x[ti, 0], float)
        h = np.nanmean(heat[ti], axis=0)
        g = geometry[ti] if geometry is not None else None
        tumor = g[TUMOR_CHANNEL] if g is not None else None
        centre = (np.argwhere(tumor > 0.5).mean(axis=0).round().astype(int) if tumor is not None and (tumor > 0.5).any()
                  else np.array(vol.shape) // 2)
        for j, (name, axis) in enumerate((("axial", 2), ("coronal", 1), ("sagittal", 0))):
            sl = [slice(None)] * 3
            sl[axis] = int(centre[axis])
            pick = tuple(sl)
            _panel(axes[ti, j], vol[pick], h[pick], None if g is None else g[LIVER_CHANNEL][pick],
                   None if tumor is None else tumor[pick],
                   f"{timepoints[ti] if ti < len(timepoints) else ti} / {name}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def contribution_bars(frame: pd.DataFrame, title: str, *, top: int = 12) -> Figure:
    """Horizontal bars of ``frame`` (label, contribution): red raises the risk, blue lowers it; the
    ``top`` largest in absolute value."""
    f = frame.reindex(frame["contribution"].abs().sort_values(ascending=False).index).head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6.2, 0.32 * len(f) + 1.1))
    colors = ["#c62828" if v > 0 else "#1565c0" for v in f["contribution"]]
    ax.barh(np.arange(len(f)), f["contribution"], color=colors)
    ax.set_yticks(np.arange(len(f)))
    ax.set_yticklabels(f["label"], fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("contribution to the risk (log-hazard units)", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
