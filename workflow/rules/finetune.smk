# Velocity decoding with RPNT on a target session: one job per scenario x RPNT row x
# session x label budget x seed. rpnt_scratch trains from random weights; the other rows
# start from their pretraining (objective, model variant) of the same scenario and seed.
# The job then scores the model it trained on the session's test trials (`rpnt finetune
# --metrics`, the code of `rpnt evaluate`): no evaluation job, no second process
# importing torch.


rule finetune:
    """Finetune (or train from scratch) RPNT on one target session and score it."""
    input:
        store=store,
        init=pretrained,
    output:
        model=directory(MODEL),
        metrics=METRICS,
        predictions=PREDICTIONS,
    log:
        f"{LOGS}/finetune/{RUN}.log",
    benchmark:
        f"{BENCHMARKS}/finetune/{RUN}.tsv"
    wildcard_constraints:
        model=RPNT_ROWS,
    # cluster runs: several finetunings per SLURM job (profile group-components:
    # scratch=N, finetune=N)
    group: train_group
    resources:
        mem_mb=sized("finetune", "mem_mb"),
        runtime=sized("finetune", "runtime"),
    params:
        reads=reads("finetune"),
        config=RESOLVED,
        flags=finetune_flags,
        ckpt=f"{CKPT}/finetune/{RUN}",
    shell:
        logged(
            "rpnt finetune --config {params.config} {params.flags} "
            "--store {input.store} --scenario {wildcards.scenario} "
            "--budget {wildcards.budget} --seed {wildcards.seed} "
            "--out {output.model} --checkpoint-dir {params.ckpt} "
            "--metrics {output.metrics} --predictions {output.predictions} "
            "--tag model={wildcards.model}"
        )
