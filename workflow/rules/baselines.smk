# The peers on the same target sessions, windows and splits: Wiener filter, GRU,
# NDT-style transformer, POYO (torch-brain). Grouped with their evaluation ("fit").


rule baseline:
    """Train one peer decoder on one target session."""
    input:
        store=store,
    output:
        directory(MODEL.replace("{model}", "{baseline}")),
    log:
        f"{LOGS}/baseline/{{scenario}}/{{baseline}}/{{session}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/baseline/{{scenario}}/{{baseline}}/{{session}}/seed{{seed}}.tsv"
    group:
        "fit"
    params:
        reads=reads("baseline"),
        config=RESOLVED,
        ckpt=f"{CKPT}/baseline/{{scenario}}/{{baseline}}/{{session}}/seed{{seed}}",
    shell:
        logged(
            "rpnt baseline --config {params.config} --model {wildcards.baseline} "
            "--store {input.store} --scenario {wildcards.scenario} --seed {wildcards.seed} "
            "--out {output} --checkpoint-dir {params.ckpt}"
        )
