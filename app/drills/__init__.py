"""Restore drills: restore the newest backup into a scratch server, check the data, time it.

    spec.py       the configuration of a drill (DrillSpec, IntegrityCheck, ...), read by app.config
    target.py     safety on the scratch server: naming, marking and removing drill databases,
                  refusing production targets
    run.py        one run (run_drill): fetch, create, restore, check, drop
    rds.py        one run of a drill with rds: restore a snapshot into a temporary RDS instance,
                  check it, delete it
    integrity.py  the integrity queries and how their answers are judged
    report.py     what a run found (DrillReport) and how it reads
    lease.py      exactly once across replicas (run_drill_with_lease)
    service.py    the drills of one process (DrillService), for cron jobs, the API and the CLI

Nothing is imported here, so that app.config reads DrillSpec without loading the run machinery.
"""
