"""Training protocol shared by every model: cross-validation folds, fitting loops."""
