# Held-out test trials of each target session: stitched predictions, R^2 of (vx, vy).


rule evaluate:
    """Score one trained decoder on its target session's test trials."""
    input:
        config=RESOLVED,
        model=MODEL,
        store=store,
    output:
        metrics=METRICS,
        predictions=PREDICTIONS,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/evaluate/{{scenario}}/{{model}}/{{session}}/seed{{seed}}.log",
    shell:
        "OMP_NUM_THREADS={threads} rpnt evaluate --model {input.model} "
        "--store {input.store} --scenario {wildcards.scenario} --config {input.config} "
        "--tag model={wildcards.model} --tag seed={wildcards.seed} "
        "--predictions {output.predictions} --out {output.metrics} > {log} 2>&1"


rule ceiling:
    """Noise ceiling of a simulated session: R^2 of the best decoder from the true latents."""
    input:
        store=store,
        truth=TRUTH,
    output:
        CEILING,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/ceiling/{{scenario}}/{{session}}.log",
    shell:
        "rpnt ceiling --store {input.store} --truth {input.truth} --out {output} "
        "--tag model=ceiling --tag scenario={wildcards.scenario} > {log} 2>&1"
