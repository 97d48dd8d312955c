"""Running a training run, knowing no algorithm by name.

:mod:`.loop` (a short loop), :mod:`.hooks` (evaluate, log, checkpoint, video,
progress, Ctrl-C), :mod:`.session` (start, resume), :mod:`.spec` (what a run is),
:mod:`.checkpoint` (what a checkpoint holds), :mod:`.evaluation` and :mod:`.stored`
(``kerasdojo eval``), :mod:`.export` (``policy.keras``) and :mod:`.recording` (videos).
Algorithms are found through the registry in :mod:`kerasdojo.agents`.
"""
