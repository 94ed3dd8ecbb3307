"""Side-by-side benchmarks of Headwater and Prefect 3.9.1 (`make bench`, `python -m bench`).

Absolute times move from run to run on a shared machine, so every figure is only worth
comparing with its neighbour measured in the same run. See bench/README.md.
"""
