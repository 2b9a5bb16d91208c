# Velocity decoding with RPNT on a target session: one job per scenario x mode x
# session x seed. scratch trains from random weights; frozen, fewshot and full start
# from the scenario's pretrained encoder of the same seed. The job then scores the model
# it trained on the session's test trials (`rpnt finetune --metrics`, the code of
# `rpnt evaluate`): no evaluation job, no second process importing torch.


rule finetune:
    """Finetune (or train from scratch) RPNT on one target session and score it."""
    input:
        store=store,
        init=pretrained,
    output:
        model=directory(MODEL.replace("{model}", "rpnt_{mode}")),
        metrics=METRICS.replace("{model}", "rpnt_{mode}"),
        predictions=PREDICTIONS.replace("{model}", "rpnt_{mode}"),
    log:
        f"{LOGS}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}.tsv"
    params:
        reads=reads("finetune"),
        config=RESOLVED,
        flags=finetune_flags,
        ckpt=f"{CKPT}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}",
    shell:
        logged(
            "rpnt finetune --config {params.config} --mode {wildcards.mode} {params.flags} "
            "--store {input.store} --scenario {wildcards.scenario} --seed {wildcards.seed} "
            "--out {output.model} --checkpoint-dir {params.ckpt} "
            "--metrics {output.metrics} --predictions {output.predictions}"
        )
