"""Typed models of Maestro's custom resources: the single source of the CRD schemas."""

from maestro.operators.api.abtest import ABTest
from maestro.operators.api.common import API_VERSION, CATEGORY, GROUP, VERSION, Resource
from maestro.operators.api.driftcheck import DriftCheck
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.api.trainingrun import TrainingRun

KINDS: tuple[type[Resource], ...] = (TrainingRun, ModelDeployment, ABTest, DriftCheck)

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "KINDS",
    "VERSION",
    "ABTest",
    "DriftCheck",
    "ModelDeployment",
    "Resource",
    "TrainingRun",
]
