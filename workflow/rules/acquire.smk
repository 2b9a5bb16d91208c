# Downloads from DANDI: one job per asset, on the submit host (compute nodes of many
# clusters have no internet). The registry pins the dandiset version.


checkpoint list_assets:
    """List a dandiset's assets at run time: the fallback for datasets without a committed
    asset manifest (config/assets/*.tsv); the DAG below it is planned from this list."""
    output:
        "resources/assets/{dataset}.tsv",
    log:
        "logs/list_assets/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(DANDI_DATASETS),
    params:
        registry=REGISTRY,
    localrule: True
    shell:
        logged(
            "rpnt fetch {wildcards.dataset} --registry {params.registry} --list-only "
            "--manifest-out {output}"
        )


rule download:
    """Download one NWB asset (checksum verified by the dandi client)."""
    output:
        "resources/raw/{dataset}/{asset}",
    log:
        "logs/download/{dataset}/{asset}.log",
    wildcard_constraints:
        dataset="|".join(DANDI_DATASETS),
        asset=r"[^.].*\.nwb",
    params:
        registry=REGISTRY,
    localrule: True
    retries: 2
    shell:
        logged(
            "rpnt fetch {wildcards.dataset} --registry {params.registry} "
            "--out resources/raw/{wildcards.dataset} --asset {wildcards.asset}"
        )
