"""What a model looked at: saliency maps of the networks, contributions of the clinical and
radiomics models, and their rendering (overlays, NIfTI heatmaps, the patient card)."""
