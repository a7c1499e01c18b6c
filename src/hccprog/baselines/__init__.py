"""Clinical baselines every imaging model must beat: penalised Cox, HCC scores, fusion."""
