"""Which modality an image is (CT or MRI), from the data rather than from the series name.

The intensity normalisation of every model depends on it: CT is windowed in Hounsfield units, MRI is
z-scored inside the liver. An MR volume windowed as CT saturates, so the answer never comes from the
name alone. In order of precedence:

1. ``modality:`` declared for the series in ``cohort.yaml`` (``series: {PV: {modality: MR}}``);
2. the DICOM ``Modality`` tag (``CT`` or ``MR``; any other modality is refused when the file is read,
   see :func:`dicom_image_problem`);
3. the intensities of a NIfTI / NRRD / MetaImage volume: a CT scan holds air and lung below
   :data:`AIR_HU` Hounsfield units, or (cropped to the abdomen) fat below :data:`FAT_HU`; an MR
   magnitude image holds neither, and a z-scored one stays within a few units of zero
   (:func:`intensity_modality`);
4. the series name (``CT_...`` / ``MR_...``), only when nothing else is known (``validate --quick``
   reads no voxels).

Where the sources disagree, :func:`resolve_modality` says so in its ``notes``; ``validate`` reports
them as ``modality-mismatch`` warnings naming the series.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("CT", "MR")

#: Below this value a voxel can only be air or lung in Hounsfield units; no MR magnitude image has it.
AIR_HU = -500.0
#: Share of voxels at or below :data:`AIR_HU` from which a volume reads as CT (air around the body).
AIR_SHARE = 1e-3
#: Fat in Hounsfield units (about -100): far below any MR value, even a z-scored one.
FAT_HU = -50.0
#: Share of voxels at or below :data:`FAT_HU` from which a volume without air reads as CT (a crop).
FAT_SHARE = 1e-2

#: DICOM modalities that are not a CT or MR scan, by what they are.
OTHER_MODALITIES = {
    "US": "an ultrasound image", "NM": "a nuclear-medicine image", "PT": "a PET image",
    "OT": "an image of modality 'other' (a secondary capture?)", "SC": "a secondary capture",
    "XA": "an X-ray angiogram", "RF": "a fluoroscopy image", "CR": "a radiograph", "DX": "a radiograph",
    "MG": "a mammogram", "ES": "an endoscopy image", "XC": "a photograph", "SM": "a slide microscopy image",
    "SR": "a structured report", "PR": "a presentation state", "KO": "a key-object selection",
    "DOC": "a document", "SEG": "a segmentation", "RTSTRUCT": "an RT structure set", "RTDOSE": "an RT dose",
    "RTPLAN": "an RT plan", "REG": "a registration", "ECG": "a waveform",
}

#: SOP classes of secondary captures (screenshots, burned-in exports): never a scan's voxels.
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


def dicom_image_problem(ds) -> str | None:
    """Why a DICOM dataset (its header) is not a CT or MR image hccprog can read, or None.

    Refused: another ``Modality`` (ultrasound, NM, PET, ...), a secondary capture, and colour images
    (palette, RGB, YBR: more than one sample per pixel)."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop = str(ds.get("SOPClassUID", "") or "")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if modality in OTHER_MODALITIES:
        what = f"{OTHER_MODALITIES[modality]} (DICOM Modality {modality})"
    elif sop.startswith(_SECONDARY_CAPTURE):
        what = f"a secondary capture (SOP class {sop}, Modality {modality or 'not given'})"
    else:
        what = None
    colour = None
    if samples != 1 or (photometric and photometric not in _GREYSCALE):
        colour = (f"a colour image (PhotometricInterpretation {photometric or 'not given'}, {samples} sample(s) "
                  "per pixel)")
    if what is None and colour is None:
        return None
    parts = [p for p in (what, colour) if p]
    return ("is " + ", ".join(parts) + ": hccprog reads CT and MR scans only (greyscale, Modality CT or MR); "
            "give the scan's original series")


def name_modality(name: str) -> str | None:
    """'CT' or 'MR' when a series name says so by its first letters, else None."""
    upper = str(name).strip().upper()
    for m in MODALITIES:
        if upper.startswith(m):
            return m
    return None


def intensity_modality(array: np.ndarray) -> str:
    """'CT' when at least :data:`AIR_SHARE` of the voxels lie at or below :data:`AIR_HU` (air or lung in
    Hounsfield units), or at least :data:`FAT_SHARE` at or below :data:`FAT_HU` (fat: a CT cropped to
    the abdomen), else 'MR'."""
    a = np.asarray(array)
    if a.size == 0:
        return "MR"
    return modality_of_shares(air_share(a), float(np.count_nonzero(a <= FAT_HU)) / a.size)


def modality_of_shares(air: float, fat: float) -> str:
    """:func:`intensity_modality` from the shares of voxels at or below :data:`AIR_HU` and :data:`FAT_HU`."""
    return "CT" if air >= AIR_SHARE or fat >= FAT_SHARE else "MR"


def air_share(array: np.ndarray) -> float:
    """Share of the voxels at or below :data:`AIR_HU`."""
    a = np.asarray(array)
    return float(np.count_nonzero(a <= AIR_HU)) / max(a.size, 1)


@dataclass
class ModalityDecision:
    """The modality a series is read as, what decided it, and where the sources disagree."""

    modality: str
    source: str  # 'declared', 'DICOM tag', 'intensities' or 'name'
    notes: list[str] = field(default_factory=list)

    @property
    def is_ct(self) -> bool:
        return self.modality == "CT"


def resolve_modality(name: str, *, declared: str | None = None, tag: str | None = None,
                     intensities: str | None = None) -> ModalityDecision:
    """The modality of series ``name`` from what is known of it (see the module's order of precedence).

    ``tag``: the DICOM ``Modality`` (empty or None for other formats); ``intensities``: what
    :func:`intensity_modality` says of the voxels (None when they were not read)."""
    tag = (tag or "").strip().upper() or None
    if tag not in MODALITIES:
        tag = None
    hint = name_modality(name)
    if declared:
        modality, source = declared.upper(), "declared"
    elif tag:
        modality, source = tag, "DICOM tag"
    elif intensities:
        modality, source = intensities, "intensities"
    else:  # nothing but the name: CT unless it says MR (hccprog's rule before the data were read)
        modality, source = (hint or "CT"), "name"
    notes: list[str] = []
    label = {"CT": "CT", "MR": "MRI"}
    if declared and tag and tag != modality:
        notes.append(f"declared modality {modality} but the DICOM Modality tag says {tag}")
    if tag and intensities and intensities != tag and not declared:
        why = ("holds neither air below -500 nor fat below -50 (a CT stored without its rescale?)"
               if tag == "CT" else "holds air- or fat-like values below -50 (a CT?)")
        notes.append(f"DICOM Modality tag {tag} but the intensities say {intensities}: the volume {why}")
    if intensities and source in ("declared",) and intensities != modality:
        notes.append(f"declared modality {modality} but the intensities look like {label[intensities]}")
    if hint and hint != modality and source != "declared":
        evidence = {"DICOM tag": f"its DICOM Modality tag is {modality}",
                    "intensities": ("its voxels hold air or fat in HU (below -500 or -50), as CT does"
                                    if modality == "CT" else "none of its voxels is air or fat in HU (below -500 "
                                    "or -50), as in MRI"),}
        notes.append(f"named like {hint} but {evidence.get(source, 'its data say ' + modality)}: "
                     f"normalised as {label[modality]}")
    return ModalityDecision(modality, source, notes)


def settle_hint(name: str) -> str:
    """How to settle a disagreement: the cohort.yaml lines that declare the modality of ``name``."""
    return f"declare it in cohort.yaml (series: {{{name}: {{modality: CT}}}} or MR) to settle it"


def volume_modality(volume, name: str = "") -> str:
    """'CT' or 'MR' for a :class:`~hccprog.imaging.volume.Volume`: as decided when the cohort read it
    (``meta['modality_source']`` set by :meth:`hccprog.cohort.model.ImageRef.load`), else from its DICOM tag
    (``meta['modality']``) and its intensities."""
    meta = getattr(volume, "meta", {}) or {}
    if meta.get("modality_source") and meta.get("modality") in MODALITIES:
        return str(meta["modality"])
    return resolve_modality(name, tag=meta.get("modality"), intensities=intensity_modality(volume.array)).modality
