"""One function per job of the workflow (pretrain, finetune, baseline, ceiling, evaluate).

A job reads its config once into typed sections, seeds once from the job's seed, trains,
scores the decoder it trained in memory, and writes its outputs atomically. The command
modules (:mod:`rpnt.commands`) only parse arguments and call these.
"""
