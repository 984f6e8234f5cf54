"""``aiconform selftest``: every check that names a requirement proves it can fail.

Owns the mutation registry (:mod:`harness.selftest.mutations`), finding the checks that own each mutation
(:mod:`harness.selftest.collect`), bringing up each mutated platform through ``aiconform run`` and grading what the
owning checks said (:mod:`harness.selftest.run`), and the power table (:mod:`harness.selftest.report`).  Must not
grade a check itself: the verdicts are the ones ``aiconform run`` writes to results.json.
"""
