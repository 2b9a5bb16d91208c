"""Training: the generic trainer, pretraining, finetuning and the training of every peer.

Modules: :mod:`rpnt.train.trainer` (``TrainConfig``, ``fit``: the loop every trainable
decoder uses), :mod:`rpnt.train.checkpoint` (rolling resume checkpoints),
:mod:`rpnt.train.runlog` (metrics.jsonl + curves.png), :mod:`rpnt.train.config`
(``model``/``pretrain``/``finetune`` config sections), :mod:`rpnt.train.pretrain`,
:mod:`rpnt.train.finetune`, :mod:`rpnt.train.peers` (Wiener, GRU, NDT, POYO),
:mod:`rpnt.train.output` (atomic run directories). What ``rpnt pretrain`` / ``finetune``
/ ``baseline`` do with these, one function a job, is :mod:`rpnt.jobs`.
"""
