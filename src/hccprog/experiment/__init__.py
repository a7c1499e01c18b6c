"""Orchestration of a run: the one cross-validation engine (:mod:`~hccprog.experiment.engine`), the
clinical baselines of an endpoint cross-validated beside other learners
(:mod:`~hccprog.experiment.baselines`), and the run folder they leave
(:mod:`~hccprog.experiment.runfolder`)."""
