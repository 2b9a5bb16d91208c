# The resolved config: every default filled, the --config of every training and
# evaluation command. Rewritten when any config value changes (its params change).


rule resolve_config:
    """Write results/<benchmark>/config.resolved.yaml."""
    output:
        RESOLVED,
    conda:
        "../../environment.yml"
    log:
        f"{LOGS}/resolve_config.log",
    params:
        config=W.config_json(config),
    localrule: True
    shell:
        "rpnt config resolve --json {params.config:q} --out {output} > {log} 2>&1"
