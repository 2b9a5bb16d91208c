# Self-supervised pretraining: one encoder per scenario and seed, on every session the
# scenario's holdout allows (rpnt.train.scenarios decides from the manifest).


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
