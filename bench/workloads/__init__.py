"""Child scripts, one per workload, run as `python <file>.py {headwater|prefect} ...`.

Each runs inside the interpreter of the SDK it measures and prints one result line
(see `_common.emit`), so the parent never imports either SDK itself.
"""
