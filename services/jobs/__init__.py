"""Writing and reading jobs: what the gateway and the conductor share (jobline.jobs).

`JobWriter` stores new jobs (checked first), cancels them, releases and resumes them;
`JobReader` finds a job and its stored events (live memory first, then the history service).
Both take their dependencies as arguments and raise the domain errors of `errors.py`; only the
HTTP edge (gateway/http/problems.py) turns those into status codes.
"""
