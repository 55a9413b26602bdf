"""Fuzz targets, the end-to-end harness and the differential parsing script.

A package so that the tests import it (`fuzz.harness`, `fuzz.fuzz_protocol`,
`fuzz.differential`) and it imports the tests' support code
(`tests.support`) with the project root on sys.path and nothing else: run
its scripts as modules from the project root, e.g.

    python -m fuzz.differential
    python -m fuzz.make_corpus
    python -m fuzz.fuzz_protocol CORPUS_DIR...   (atheris; see fuzz/Makefile)
"""
