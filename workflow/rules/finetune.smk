# Velocity decoding with RPNT on a target session: one job per scenario x mode x
# session x seed. scratch trains from random weights; frozen, fewshot and full start
# from the scenario's pretrained encoder of the same seed. On a cluster, the job and the
# evaluation of its output run as one submission (group "fit", see evaluate.smk).


rule finetune:
    """Finetune (or train from scratch) RPNT on one target session."""
    input:
        store=store,
        init=pretrained,
    output:
        directory(MODEL.replace("{model}", "rpnt_{mode}")),
    log:
        f"{LOGS}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}.tsv"
    group:
        "fit"
    params:
        reads=reads("finetune"),
        config=RESOLVED,
        flags=finetune_flags,
        ckpt=f"{CKPT}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}",
    shell:
        logged(
            "rpnt finetune --config {params.config} --mode {wildcards.mode} {params.flags} "
            "--store {input.store} --scenario {wildcards.scenario} --seed {wildcards.seed} "
            "--out {output} --checkpoint-dir {params.ckpt}"
        )
