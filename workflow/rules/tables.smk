# The benchmark table (mean +- std of R^2 over sessions and seeds, with provenance) and
# its figures. Both are marked for `snakemake --report report.html`.


rule table:
    """Collect every metrics JSON into results/benchmark/<name>/bin<B>ms/table.md and table.csv."""
    input:
        metrics=all_metrics,
        pretrained=all_pretrained,
    output:
        md=report(
            f"{TABLE_DIR}/table.md",
            caption="../report/table.rst",
            category="Benchmark",
            labels={"table": "markdown"},
        ),
        csv=report(
            f"{TABLE_DIR}/table.csv",
            caption="../report/table.rst",
            category="Benchmark",
            labels={"table": "csv"},
        ),
        differences=f"{TABLE_DIR}/differences.csv",
        probe=f"{TABLE_DIR}/probe.csv",
        scaling=f"{TABLE_DIR}/scaling.csv",
    log:
        f"{LOGS}/table.log",
    group: "report"
    params:
        reads=reads("table"),
        config=RESOLVED,
        out_dir=lambda wildcards, output: os.path.dirname(output.md),
    shell:
        logged(
            "rpnt table {input.metrics} --out-dir {params.out_dir} --config {params.config} "
            "--pretrained {input.pretrained}"
        )


rule figures:
    """R^2 per scenario and model, predicted vs true velocity, training curves,
    attention maps."""
    input:
        metrics=all_metrics,
        predictions=all_predictions,
        runs=all_curves,
    output:
        report(
            directory(f"{TABLE_DIR}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/figures.log",
    group: "report"
    params:
        reads=reads("figures"),
        config=RESOLVED,
    shell:
        logged(
            "rpnt figures --config {params.config} --metrics {input.metrics} "
            "--predictions {input.predictions} --runs {input.runs} --out-dir {output}"
        )
