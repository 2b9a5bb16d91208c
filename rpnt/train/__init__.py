"""Training: the generic trainer, batches from sessions, scenarios, pretrain and finetune.

Modules: :mod:`rpnt.train.trainer` (``TrainConfig``, ``fit``: the loop every trainable
decoder uses), :mod:`rpnt.train.checkpoint` (rolling resume checkpoints),
:mod:`rpnt.train.runlog` (metrics.jsonl + curves.png), :mod:`rpnt.train.batches`
(sessions -> RPNT inputs), :mod:`rpnt.train.scenarios` (what pretraining may see),
:mod:`rpnt.train.config` (``model``/``pretrain``/``finetune`` config sections),
:mod:`rpnt.train.pretrain`, :mod:`rpnt.train.finetune`, :mod:`rpnt.train.output`
(atomic run directories) and :mod:`rpnt.train.runs` (the ``rpnt pretrain`` /
``rpnt finetune`` commands).
"""
