# Self-supervised pretraining: one encoder per scenario and seed, on every session the
# scenario's holdout allows (rpnt.train.scenarios decides from the manifest).


rule pretrain:
    """Pretrain RPNT for one scenario and seed (resumes from its rolling checkpoint)."""
    input:
        config=RESOLVED,
        manifest=MANIFEST,
        stores=all_stores,
    output:
        directory(PRETRAIN),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/pretrain/{{scenario}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/pretrain/{{scenario}}/seed{{seed}}.tsv"
    params:
        ckpt=f"{CKPT}/pretrain/{{scenario}}/seed{{seed}}",
    shell:
        "OMP_NUM_THREADS={threads} rpnt pretrain --config {input.config} "
        "--manifest {input.manifest} --scenario {wildcards.scenario} "
        "--seed {wildcards.seed} --out {output} --checkpoint-dir {params.ckpt} "
        "> {log} 2>&1"
