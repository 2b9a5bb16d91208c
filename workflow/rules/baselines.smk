# The peers on the same target sessions, windows and splits: Wiener filter, GRU,
# NDT-style transformer, POYO (torch-brain).


rule baseline:
    """Train one peer decoder on one target session."""
    input:
        config=RESOLVED,
        store=store,
    output:
        directory(MODEL.replace("{model}", "{baseline}")),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/baseline/{{scenario}}/{{baseline}}/{{session}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/baseline/{{scenario}}/{{baseline}}/{{session}}/seed{{seed}}.tsv"
    params:
        ckpt=f"{CKPT}/baseline/{{scenario}}/{{baseline}}/{{session}}/seed{{seed}}",
    shell:
        "OMP_NUM_THREADS={threads} rpnt baseline --config {input.config} "
        "--model {wildcards.baseline} --store {input.store} "
        "--scenario {wildcards.scenario} --seed {wildcards.seed} --out {output} "
        "--checkpoint-dir {params.ckpt} > {log} 2>&1"
