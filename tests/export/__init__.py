"""Tests of ``shipyard export docker|k8s|kserve``."""
