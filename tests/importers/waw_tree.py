"""A dataset folder in the WAW-TACE layout, made from a synthetic hccprog cohort, for the importer's tests.

``<root>/<id>/<id>_<k>_scan.nii.gz`` (k = 0..3; the delayed phase on a coarser grid than the others),
``<root>/tumor_masks_v1/<id>/lesion_<n>.nrrd`` (one file per connected tumor component, on the arterial
grid), ``<root>/TotalSegmentator/<id>/total.nii.gz`` (multi-label, liver = 5, spleen = 1), and
``<root>/clinical.xlsx`` with a data sheet (numeric ids) and a definitions sheet.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd


def build_waw(root: Path, synthetic: Path, *, without_liver: tuple[int, ...] = ()) -> dict[str, str]:
    """Write the dataset; returns waw id -> synthetic patient id."""
    import SimpleITK as sitk
    from scipy import ndimage

    from hccprog.imaging.volume import Volume
    from hccprog.preprocessing.register import to_sitk

    images = pd.read_csv(synthetic / "images.csv")
    clinical = pd.read_csv(synthetic / "clinical.csv")
    base = images[images["timepoint"] == "baseline"]
    ids: dict[str, str] = {}
    rows = []
    for n, (pid, g) in enumerate(base.groupby("patient_id", sort=True)):
        wid = str(2 + 3 * n)  # WAW-TACE ids are integers with gaps
        ids[wid] = pid
        folder = root / wid
        folder.mkdir(parents=True)
        by = {r.series: r for r in g.itertuples()}
        for k, series in enumerate(("CT_NC", "CT_ART", "CT_PV", "CT_PV")):
            img = nib.load(synthetic / by[series].image)
            if k == 3:  # delayed: another grid (half the voxels in-plane)
                data = np.asarray(img.dataobj)[::2, ::2, :]
                affine = img.affine.copy()
                affine[:3, :2] *= 2
                img = nib.Nifti1Image(data, affine)
            nib.save(img, folder / f"{wid}_{k}_scan.nii.gz")
        mask = nib.load(synthetic / by["CT_ART"].mask)
        labels = np.asarray(mask.dataobj)
        comps, count = ndimage.label(labels == 2)
        lesion_dir = root / "tumor_masks_v1" / wid
        lesion_dir.mkdir(parents=True)
        for c in range(1, count + 1):
            vol = Volume((comps == c).astype(np.uint8), mask.affine)
            sitk.WriteImage(to_sitk(vol), str(lesion_dir / f"lesion_{c}.nrrd"))
        if n not in without_liver:
            total = np.where(labels > 0, 5, 0).astype(np.uint8)
            total[:3, :3, :3] = 1  # another organ: not the liver
            seg_dir = root / "TotalSegmentator" / wid
            seg_dir.mkdir(parents=True)
            nib.save(nib.Nifti1Image(total, mask.affine), seg_dir / "total.nii.gz")
        c = clinical[clinical["patient_id"] == pid].iloc[0]
        rows.append({"ID": int(wid), "Age": c["age"], "Sex": c["sex"], "AFP": c["afp"],
                     "Progression": "Yes" if c["pfs_event"] == 1 else "No",
                     "Follow-up": round(float(c["pfs_time"]) / 30.4375, 2), "mRECIST": c["response"]})
    definitions = pd.DataFrame({"Variable": ["ID", "Age", "Sex", "AFP", "Progression", "Follow-up", "mRECIST"],
                                "Definition": ["patient number", "age at TACE, years", "sex",
                                               "alpha-fetoprotein, ng/mL", "binary progression after TACE",
                                               "follow-up time in months", "response to the first TACE"]})
    with pd.ExcelWriter(root / "clinical.xlsx") as xl:
        pd.DataFrame(rows).to_excel(xl, sheet_name="data", index=False)
        definitions.to_excel(xl, sheet_name="definitions", index=False)
    return ids
