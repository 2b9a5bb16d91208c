# NWB -> Zarr store (schema v2), one job per session, then the dataset's manifest.


rule ingest:
    """Bin one session's spikes and behaviour into a Zarr store."""
    input:
        nwb=raw_nwb,
    output:
        directory(STORE),
    conda:
        "../../environment.yml"
    log:
        f"logs/ingest/{DATASET}/{{session}}.log",
    benchmark:
        f"benchmarks/ingest/{DATASET}/{{session}}.tsv"
    threads: 2
    params:
        manifest=f"--asset-manifest {ASSET_MANIFEST}" if ASSET_MANIFEST else "",
        bin_ms=config["bin_ms"],
        adapter=ENTRY.get("adapter", "auto"),
        dataset=DATASET,
        registry=REGISTRY,
    shell:
        "rpnt ingest {input.nwb} --out {output} --bin-ms {params.bin_ms} "
        "--adapter {params.adapter} --dataset {params.dataset} --registry {params.registry} "
        "{params.manifest} --threads {threads} > {log} 2>&1"


rule manifest:
    """One row per session store: the table pretraining and scenarios select from."""
    input:
        all_stores,
    output:
        MANIFEST,
    conda:
        "../../environment.yml"
    log:
        f"logs/manifest/{DATASET}.log",
    shell:
        "rpnt manifest {input} --out {output} > {log} 2>&1"
