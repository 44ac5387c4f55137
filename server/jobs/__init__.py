"""Training jobs run inside the service, next to the board (jobs.proto).

- :mod:`~sidra.server.jobs.runner`: the training code, found by entry point and
  loaded at the first SubmitJob (refused naming the ``training`` extra without it);
- :mod:`~sidra.server.jobs.board`: the board a job sees, through turns and leases;
- :mod:`~sidra.server.jobs.submission`: a SubmitJob checked whole before anything happens;
- :mod:`~sidra.server.jobs.datasets`: data set files kept for jobs, uploaded in pieces;
- :mod:`~sidra.server.jobs.queue`: the queue's order (principals' turns, tiles kept) and passes;
- :mod:`~sidra.server.jobs.live`: a job as held while it runs, its progress events, its end told;
- :mod:`~sidra.server.jobs.table`: the jobs held in memory, and the condition they change under;
- :mod:`~sidra.server.jobs.starting`: a checked job started at once, or queued and started so;
- :mod:`~sidra.server.jobs.running`: a started job's thread, its reports and its end;
- :mod:`~sidra.server.jobs.manager`: submitting, reading, watching, cancelling, deleting;
- :mod:`~sidra.server.jobs.service`: ``sidra.hil.v1.JobService`` over gRPC.
"""

from sidra.server.jobs.datasets import DatasetFiles
from sidra.server.jobs.manager import JobManager
from sidra.server.jobs.runner import TRAINING_EXTRA, JobRunner, load_runner
from sidra.server.jobs.service import JOB_SERVICE_NAME, JobServicer, job_service_handler

__all__ = [
    "JOB_SERVICE_NAME",
    "TRAINING_EXTRA",
    "DatasetFiles",
    "JobManager",
    "JobRunner",
    "JobServicer",
    "job_service_handler",
    "load_runner",
]
