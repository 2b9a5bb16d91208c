# Held-out test trials of each target session: stitched predictions, R^2 of (vx, vy).
#
# Evaluations are small: on a cluster each one runs in the same submission as the
# training job that made its model (group "fit": one training + its evaluation per sbatch
# job), and the noise ceilings of a benchmark run together as one job (group "ceiling",
# all of them: group-components in the profile). Locally, groups change nothing.


rule evaluate:
    """Score one trained decoder on its target session's test trials."""
    input:
        model=MODEL,
        store=store,
    output:
        metrics=METRICS,
        predictions=PREDICTIONS,
    log:
        f"{LOGS}/evaluate/{{scenario}}/{{model}}/{{session}}/seed{{seed}}.log",
    group:
        "fit"
    params:
        reads=reads("evaluate"),
        config=RESOLVED,
    shell:
        logged(
            "rpnt evaluate --model {input.model} --store {input.store} "
            "--scenario {wildcards.scenario} --config {params.config} "
            "--tag model={wildcards.model} --tag seed={wildcards.seed} "
            "--predictions {output.predictions} --out {output.metrics}"
        )


rule ceiling:
    """Noise ceiling of a simulated session: R^2 of the best decoder from the true latents."""
    input:
        store=store,
        truth=TRUTH,
    output:
        CEILING,
    log:
        f"{LOGS}/ceiling/{{scenario}}/{{session}}.log",
    group:
        "ceiling"
    shell:
        logged(
            "rpnt ceiling --store {input.store} --truth {input.truth} --out {output} "
            "--tag model=ceiling --tag scenario={wildcards.scenario}"
        )
