# Self-supervised pretraining: one encoder per scenario and seed, on every session the
# scenario's holdout allows (rpnt.data.scenarios decides from the manifest).


rule pretrain:
    """Pretrain RPNT for one scenario and seed (resumes from its rolling checkpoint)."""
    input:
        manifest=MANIFEST,
        stores=all_stores,
    output:
        directory(PRETRAIN),
    log:
        f"{LOGS}/pretrain/{{scenario}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/pretrain/{{scenario}}/seed{{seed}}.tsv"
    # Before the peers and RPNT from scratch, which need only a store: pretrainings are
    # the longest jobs and three of the four finetuning modes wait for them, so started
    # first they do not leave those finetunings (and one idle core) for the end.
    priority: 10
    params:
        reads=reads("pretrain"),
        config=RESOLVED,
        ckpt=f"{CKPT}/pretrain/{{scenario}}/seed{{seed}}",
    shell:
        logged(
            "rpnt pretrain --config {params.config} --manifest {input.manifest} "
            "--scenario {wildcards.scenario} --seed {wildcards.seed} --out {output} "
            "--checkpoint-dir {params.ckpt}"
        )
