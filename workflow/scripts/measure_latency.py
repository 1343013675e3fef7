from ciprivacy.data import load_prepared
from ciprivacy.metrics.latency import built_latency_report
from ciprivacy.runtime import end_job_process, job_log

with job_log(snakemake.log[0]):
    shapes = {}
    for dataset, path in zip(snakemake.params.datasets, snakemake.input.data):
        data = load_prepared(path)
        shapes[dataset] = {"num_classes": data.num_classes, "image_shape": list(data.image_shape)}
    specs = [{**spec, **shapes[spec["dataset"]]} for spec in snakemake.params.specs]
    out = snakemake.output
    built_latency_report(specs, snakemake.params.settings, out.csv, out.md, html_path=out.html)
end_job_process()  # outputs written and closed: skip the interpreter teardown
