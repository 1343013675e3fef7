from ciprivacy.reporting.glance import write_glance
from ciprivacy.runtime import end_job_process, job_log

p = snakemake.params
with job_log(snakemake.log[0]):
    tables = {protocol: (p.table, csv) for protocol, csv in zip(p.protocols, snakemake.input.tables)}
    write_glance(snakemake.input.claims, tables, snakemake.output.html)
end_job_process()  # outputs written and closed: skip the interpreter teardown
