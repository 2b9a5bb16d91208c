# Pretraining: one encoder per scenario, pretraining (objective ssl or joint, with a
# variant's model settings) and seed, on every session the scenario's holdout allows
# (rpnt.data.scenarios decides from the manifest). Every RPNT row of that objective and
# model starts from it, at every label budget.


rule pretrain:
    """Pretrain RPNT for one scenario and seed (resumes from its rolling checkpoint)."""
    input:
        manifest=MANIFEST,
        stores=all_stores,
        # other datasets' manifests in this scenario's corpus (the job reads them itself)
        corpus=lambda wildcards: W.pretrain_manifests(config, wildcards.scenario),
    output:
        directory(PRETRAIN),
    log:
        f"{LOGS}/pretrain/{{scenario}}/{{pretraining}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/pretrain/{{scenario}}/{{pretraining}}/seed{{seed}}.tsv"
    # Before the peers and RPNT from scratch, which need only a store: pretrainings are
    # the longest jobs and three of the four finetuning modes wait for them, so started
    # first they do not leave those finetunings (and one idle core) for the end.
    priority: 10
    # never grouped: one long job, possibly several ranks and nodes, each its own request
    resources:
        mem_mb=sized("pretrain", "mem_mb"),
        runtime=sized("pretrain", "runtime"),
    params:
        reads=reads("pretrain"),
        config=RESOLVED,
        flags=pretrain_flags,
        ckpt=f"{CKPT}/pretrain/{{scenario}}/{{pretraining}}/seed{{seed}}",
        # data-parallel ranks from the resources tasks/mpi of the profile (srun under
        # SLURM, torchrun on one machine; docs/workflow.md), "" for one process
        launch=lambda wildcards, resources: W.rank_launcher(resources),
    shell:
        logged(
            "{params.launch}rpnt pretrain --config {params.config} --manifest {input.manifest} "
            "--scenario {wildcards.scenario} {params.flags} --seed {wildcards.seed} "
            "--out {output} "
            "--checkpoint-dir {params.ckpt}"
        )
