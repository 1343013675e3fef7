from ciprivacy.reporting.paper_figures import figure4
from ciprivacy.runtime import end_job_process, job_log

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    figure4(
        snakemake.input.samples,
        snakemake.input.metrics,
        snakemake.output.figure,
        title=f"Figure 4: reconstructions, {w.dataset} / {w.arch}",
        n=snakemake.params.n,
    )
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
