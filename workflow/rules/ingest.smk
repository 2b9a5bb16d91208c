# NWB -> Zarr store (schema v2), one job per session, then the dataset's manifest. Both
# live under a folder named by the ingest options (bin size), shared by every benchmark
# that ingests this dataset the same way.


rule ingest:
    """Bin one session's spikes and behaviour into a Zarr store."""
    input:
        nwb=raw_nwb,
    output:
        directory(STORE),
    log:
        f"logs/ingest/{DATASET}/{BIN}/{{session}}.log",
    benchmark:
        f"benchmarks/ingest/{DATASET}/{BIN}/{{session}}.tsv"
    threads: 2
    # cluster runs: a few sessions per SLURM job (profile group-components: ingest=N)
    group: "ingest"
    # The pretrainings (priority 10) wait for every store and the manifest: a store job
    # first, so they start as early as they can (Snakemake does not pass a rule's
    # priority on to the jobs it depends on).
    priority: 10
    params:
        manifest=f"--asset-manifest {ASSET_MANIFEST}" if ASSET_MANIFEST else "",
        bin_ms=config["bin_ms"],
        adapter=ENTRY.get("adapter", "auto"),
        dataset=DATASET,
        registry=REGISTRY,
        # what ingest reads from the registry entry (adapter, generic mapping, ...)
        entry=W.ingest_digest(ENTRY),
    shell:
        logged(
            "rpnt ingest {input.nwb} --out {output} --bin-ms {params.bin_ms} "
            "--adapter {params.adapter} --dataset {params.dataset} --registry {params.registry} "
            "{params.manifest} --threads {threads}"
        )


rule manifest:
    """One row per session store: the table pretraining and scenarios select from."""
    input:
        all_stores,
    output:
        MANIFEST,
    priority: 10
    log:
        f"logs/manifest/{DATASET}/{BIN}.log",
    shell:
        logged("rpnt manifest {input} --out {output}")
