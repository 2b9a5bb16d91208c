"""Training: the generic trainer, batches from sessions, scenarios, pretrain and finetune.

Modules: :mod:`rpnt.train.trainer` (``TrainConfig``, ``fit``), :mod:`rpnt.train.checkpoint`
(rolling resume checkpoints), :mod:`rpnt.train.runlog` (metrics.jsonl + curves.png),
:mod:`rpnt.train.batches` (sessions -> model inputs), :mod:`rpnt.train.scenarios`
(what pretraining may see), :mod:`rpnt.train.config`, :mod:`rpnt.train.pretrain`,
:mod:`rpnt.train.finetune`.
"""
