# The peers on the same target sessions, windows and splits: Wiener filter, GRU,
# NDT-style transformer, POYO (torch-brain). Each job scores the model it trained, as
# the RPNT finetuning jobs do (`rpnt baseline --metrics`).


rule baseline:
    """Train one peer decoder on one target session and score it."""
    input:
        store=store,
    output:
        model=directory(MODEL.replace("{model}", "{baseline}")),
        metrics=METRICS.replace("{model}", "{baseline}"),
        predictions=PREDICTIONS.replace("{model}", "{baseline}"),
    log:
        f"{LOGS}/baseline/{RUN.replace('{model}', '{baseline}')}.log",
    benchmark:
        f"{BENCHMARKS}/baseline/{RUN.replace('{model}', '{baseline}')}.tsv"
    # cluster runs: several peers per SLURM job (profile group-components: baselines=N)
    group: "baselines"
    resources:
        mem_mb=sized("baseline", "mem_mb"),
        runtime=sized("baseline", "runtime"),
    params:
        reads=reads("baseline"),
        config=RESOLVED,
        ckpt=f"{CKPT}/baseline/{RUN.replace('{model}', '{baseline}')}",
    shell:
        logged(
            "rpnt baseline --config {params.config} --model {wildcards.baseline} "
            "--store {input.store} --scenario {wildcards.scenario} "
            "--budget {wildcards.budget} --seed {wildcards.seed} --out {output.model} --checkpoint-dir {params.ckpt} "
            "--metrics {output.metrics} --predictions {output.predictions}"
        )
