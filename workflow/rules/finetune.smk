# Velocity decoding with RPNT on a target session: one job per scenario x mode x
# session x seed. scratch trains from random weights; frozen, fewshot and full start
# from the scenario's pretrained encoder of the same seed.


rule finetune:
    """Finetune (or train from scratch) RPNT on one target session."""
    input:
        config=RESOLVED,
        store=store,
        init=pretrained,
    output:
        directory(MODEL.replace("{model}", "rpnt_{mode}")),
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}.tsv"
    params:
        flags=finetune_flags,
        ckpt=f"{CKPT}/finetune/{{scenario}}/{{mode}}/{{session}}/seed{{seed}}",
    shell:
        "OMP_NUM_THREADS={threads} rpnt finetune --config {input.config} "
        "--mode {wildcards.mode} {params.flags} --store {input.store} "
        "--scenario {wildcards.scenario} --seed {wildcards.seed} --out {output} "
        "--checkpoint-dir {params.ckpt} > {log} 2>&1"
